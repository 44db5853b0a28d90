//! `netvantage ports` (being written).

#[derive(clap::Args, Debug)]
pub struct PortsArgs {}

pub async fn run(_args: PortsArgs) -> anyhow::Result<i32> {
    Err(crate::exit::usage("'ports' is not implemented yet"))
}
