//! `structure-broker CONFIG.toml`: one RMQTT cluster node with Structure
//! access keys. See the crate documentation and `config::NodeConfig`.

use std::process::ExitCode;

use structure_access_rmqtt::config::NodeConfig;

#[tokio::main]
async fn main() -> ExitCode {
    // RMQTT's own info lines repeat every refused connection (the plugin logs
    // each refusal once, within a budget): its modules log warnings and errors
    // unless RUST_LOG says otherwise.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,rmqtt=warn"))
        .init();
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: structure-broker CONFIG.toml");
        return ExitCode::from(2);
    };
    let config = match NodeConfig::read(path.as_ref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match structure_access_rmqtt::node::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}; stopping");
            ExitCode::FAILURE
        }
    }
}
