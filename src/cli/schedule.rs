use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ScheduleArgs {}

pub fn run(_a: &ScheduleArgs) -> crate::Result<u8> {
    Ok(0)
}
