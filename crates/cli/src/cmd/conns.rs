//! `netvantage conns` (placeholder until its issue lands).

#[derive(clap::Args, Debug)]
pub struct ConnsArgs {}

pub async fn run(_args: ConnsArgs) -> anyhow::Result<i32> {
    Err(crate::exit::usage("'conns' is not implemented yet"))
}
