fn main() -> std::process::ExitCode {
    mcpspy::cli::main()
}
