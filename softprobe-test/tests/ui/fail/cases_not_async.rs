#[softprobe::cases("tests/cases/*.case.json")]
fn app() -> String {
    String::new()
}

fn main() {}
