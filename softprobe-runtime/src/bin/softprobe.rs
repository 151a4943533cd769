//! The `softprobe` command line; everything lives in `softprobe_runtime::cli`.

fn main() -> std::process::ExitCode {
    softprobe_runtime::cli::main()
}
