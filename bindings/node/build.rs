//! napi-rs's build step: the link arguments a Node add-on needs on the platforms that want
//! them (on Linux, none: node's symbols resolve when the module is loaded).
fn main() {
    napi_build::setup();
}
