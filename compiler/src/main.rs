fn main() -> std::process::ExitCode {
    meshc::profile::stage("start");
    meshc::cli::main()
}
