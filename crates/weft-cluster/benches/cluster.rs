//! weft-cluster bench (filled in by a later commit).

fn main() {}
