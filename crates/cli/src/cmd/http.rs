//! `netvantage http` (placeholder until its issue lands).

#[derive(clap::Args, Debug)]
pub struct HttpArgs {}

pub async fn run(_args: HttpArgs) -> anyhow::Result<i32> {
    Err(crate::exit::usage("'http' is not implemented yet"))
}
