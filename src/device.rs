//! Where the tensors live: `auto`, `cpu`, `cuda[:N]` or `metal[:N]`.

use candle_core::Device;

use crate::error::{Error, Result, Scope};

/// A device by name, opened with [`DeviceSpec::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A GPU when one works (CUDA, then Metal, where compiled in), else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N (cargo feature `cuda`).
    Cuda(usize),
    /// Metal device N (cargo feature `metal`).
    Metal(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::setting(
                Scope::Device,
                "device",
                s,
                "unknown device (allowed: auto, cpu, cuda, cuda:N, metal, metal:N)",
            )
        };
        let lower = s.to_ascii_lowercase();
        let (kind, idx) = match lower.split_once(':') {
            Some((k, i)) => (k, Some(i.parse::<usize>().map_err(|_| bad())?)),
            None => (lower.as_str(), None),
        };
        match (kind, idx) {
            ("auto", None) => Ok(DeviceSpec::Auto),
            ("cpu", None) => Ok(DeviceSpec::Cpu),
            ("cuda", i) => Ok(DeviceSpec::Cuda(i.unwrap_or(0))),
            ("metal", i) => Ok(DeviceSpec::Metal(i.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Metal(i) => write!(f, "metal:{i}"),
        }
    }
}

/// Opening a GPU can panic deep in a driver binding when the library is missing; turn that
/// into an error instead of taking the process down.
fn open(
    what: &str,
    f: impl FnOnce() -> candle_core::Result<Device> + std::panic::UnwindSafe,
) -> Result<Device> {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(prev);
    match r {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(Error::Device {
            device: what.to_string(),
            reason: format!(
                "not usable: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        }),
        Err(_) => Err(Error::Device {
            device: what.to_string(),
            reason: "not usable: the driver could not be loaded".into(),
        }),
    }
}

impl DeviceSpec {
    /// Opens the device. `Auto` tries CUDA, then Metal (where compiled in), then the CPU.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                if cfg!(feature = "cuda") {
                    open(&format!("cuda:{i}"), move || Device::new_cuda(i))
                } else {
                    Err(Error::Device {
                        device: format!("cuda:{i}"),
                        reason: "this build of lrfind has no CUDA support (rebuild with the cargo feature `cuda`)".into(),
                    })
                }
            }
            DeviceSpec::Metal(i) => {
                if cfg!(feature = "metal") {
                    open(&format!("metal:{i}"), move || Device::new_metal(i))
                } else {
                    Err(Error::Device {
                        device: format!("metal:{i}"),
                        reason: "this build of lrfind has no Metal support (rebuild with the cargo feature `metal`)".into(),
                    })
                }
            }
            DeviceSpec::Auto => {
                if cfg!(feature = "cuda") {
                    if let Ok(d) = DeviceSpec::Cuda(0).open() {
                        return Ok(d);
                    }
                }
                if cfg!(feature = "metal") {
                    if let Ok(d) = DeviceSpec::Metal(0).open() {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
        }
    }
}

/// A short name for reports: "cpu", "cuda:0", "metal:0".
pub fn describe(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("CPU".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("metal".parse::<DeviceSpec>().unwrap(), DeviceSpec::Metal(0));
        let e = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.starts_with("device = tpu: unknown device"), "{e}");
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn auto_never_fails_without_a_gpu() {
        let d = DeviceSpec::Auto.open().unwrap();
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert!(d.is_cpu());
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(e.contains("no CUDA support"), "{e}");
    }
}
