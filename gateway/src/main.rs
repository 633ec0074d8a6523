//! mqgate command line. Until the gateway pipeline lands, `mqgate broker` runs the embedded broker.
fn main() {}
