// TEMP stub until the plot module lands.
use std::path::Path;
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}: unsupported plot format (allowed: .png, .svg)")]
    Ext(String),
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat { Png, Svg }
impl PlotFormat {
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("png") => Ok(Self::Png), Some("svg") => Ok(Self::Svg), _ => Err(PlotError::Ext(path.display().to_string())) }
    }
}
pub struct Suggestion { pub lr: f64, pub loss: f64, pub label: String }
pub struct RangeTestPlot<'a> { pub lrs: &'a [f64], pub losses: &'a [f64], pub smoothed: &'a [f64], pub suggestion: Option<Suggestion>, pub title: String }
pub fn range_test(_path: &Path, _plot: &RangeTestPlot) -> Result<(), PlotError> { Ok(()) }
pub struct CurvesPlot<'a> { pub epochs: &'a [usize], pub train_loss: &'a [f64], pub val_loss: &'a [f64], pub val_accuracy: &'a [f64], pub lr: &'a [f64], pub title: String }
pub fn curves(_path: &Path, _plot: &CurvesPlot) -> Result<(), PlotError> { Ok(()) }
pub struct CheckCurve<'a> { pub label: String, pub lrs: &'a [f64], pub smoothed: &'a [f64], pub suggestion: Option<f64> }
pub struct CheckPlot<'a> { pub curves: Vec<CheckCurve<'a>>, pub baseline: Option<f64>, pub title: String }
pub fn check(_path: &Path, _plot: &CheckPlot) -> Result<(), PlotError> { Ok(()) }
pub struct SchedulePlot<'a> { pub lr: &'a [Vec<f64>], pub momentum: Option<&'a [Vec<f64>]>, pub title: String }
pub fn schedule(_path: &Path, _plot: &SchedulePlot) -> Result<(), PlotError> { Ok(()) }
