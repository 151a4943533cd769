#[softprobe::case]
async fn checkout() {}

fn main() {}
