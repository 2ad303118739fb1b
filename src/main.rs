fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(deploy_action::run(std::env::args_os()))
}
