// The suite's `cases` use a variable that is not set when this compiles: the macro does not
// read the environment; the generated test lists the cases when it runs.
#[softprobe::cases("tests/ui/suites/variable.suite.yaml")]
async fn app(sp: softprobe::Session) -> String {
    let _ = sp;
    String::new()
}

fn main() {}
