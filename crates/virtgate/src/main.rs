//! virtgate: the binary (CLI, tokio glue). Work in progress: the pure helpers land first.
#[allow(dead_code)]
mod mss;
#[allow(dead_code)]
mod pool;
#[allow(dead_code)]
mod table;
fn main() {}
