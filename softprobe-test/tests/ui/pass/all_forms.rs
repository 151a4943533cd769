#[softprobe::case("cases/a.case.json")]
fn plain() {}

#[softprobe::case("cases/a.case.json", mode = "capture", strict)]
fn with_session(_sp: softprobe::Session) {}

#[softprobe::case("cases/a.case.json", partial, strict)]
fn partial_and_strict(_sp: softprobe::Session) {}

#[softprobe::case("cases/a.case.json", mode = "auto", redact(".body.createdAt", "header:date"))]
async fn async_with_session(_sp: softprobe::Session) -> Result<(), std::io::Error> {
    Ok(())
}

mod renamed {
    pub use softprobe as sp_alias;
}

#[softprobe::case("cases/a.case.json", crate = "renamed::sp_alias")]
async fn renamed_crate() {}

fn main() {}
