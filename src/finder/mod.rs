//! The LR range test (Leslie Smith 2015, §3.3): sweep, smoothing, suggestion, verification.
//!
//! Pure functions on `f64` slices plus loops over a [`TrainStep`]; nothing here knows
//! about candle, so the finder runs on any model and on analytic curves in tests.

pub mod analysis;
pub mod ladder;
pub mod smooth;
pub mod suggest;
pub mod sweep;
pub mod verify;

pub use analysis::{analyse, Analysis, Edge, NoiseCheck};
pub use ladder::{ladder, LadderMode};
pub use smooth::{smooth, Ema};
pub use suggest::{suggest, suggest_all, NoSuggestion, Rule, Suggestion, Window};
pub use sweep::{
    find_lr, run_sweep, Checkpoint, Curve, StepEvent, StopReason, SweepConfig, TrainStep,
};
pub use verify::{
    candidates, verify, Candidate, Trial, TrialEvent, TrialScore, Verification, VerifyConfig,
};
