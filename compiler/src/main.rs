fn main() -> std::process::ExitCode {
    meshc::pipeline::bound_malloc_arenas();
    meshc::profile::stage("start");
    meshc::cli::main()
}
