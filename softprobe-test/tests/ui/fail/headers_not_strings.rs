#[softprobe::case("cases/listing.case.json", headers(etag))]
async fn listing() {}

fn main() {}
