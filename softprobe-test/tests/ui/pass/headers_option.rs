//! `headers(...)` adds response headers to the comparison, alone or with every other option.

#[softprobe::case("cases/listing.case.json", headers("x-total-count"))]
async fn one_header() {}

#[softprobe::case(
    "cases/listing.case.json",
    mode = "replay",
    strict,
    redact(".body.id", "header:location"),
    headers("X-Total-Count", "etag"),
)]
async fn with_every_option(sp: softprobe::Session) {
    let _ = sp.id();
}

fn main() {}
