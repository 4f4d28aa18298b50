//! One cluster node: RMQTT with the broadcast cluster plugin and, unless
//! configured off, the access-key plugin.

use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;

use crate::config::NodeConfig;

/// Runs the node until the process ends.
pub async fn run(config: NodeConfig) -> Result<(), String> {
    let mut builder = ServerContext::new()
        .node_id(config.node_id)
        // RMQTT refuses CONNECTs when the machine's CPU is above 90%: a busy
        // machine is not a reason to turn devices away.
        .busy_check_enable(false);
    let clustered = !config.peers.is_empty();
    if clustered && let Some(exposure) = crate::config::grpc_exposure(&config.grpc_listen) {
        log::warn!(
            "grpc_listen {} is on {exposure}: whoever reaches it can publish to any topic past \
             the access-key plugin, kick sessions and list them; bind it to a private address \
             and admit only the other nodes' addresses to it (see the README)",
            config.grpc_listen
        );
    }
    // Retained messages, in memory (RMQTT's retainer), within bounds.
    if config.max_retained_messages > 0 {
        builder = builder.plugins_config_map_add(
            "rmqtt-retainer",
            format!(
                "storage.type = \"ram\"\nmax_retained_messages = {}\nmax_payload_size = \"{}B\"",
                config.max_retained_messages, config.max_retained_payload
            ),
        );
    }
    if clustered {
        let peers = toml::Value::Array(
            config
                .peers
                .iter()
                .map(|p| toml::Value::String(p.clone()))
                .collect(),
        );
        builder = builder.plugins_config_map_add(
            "rmqtt-cluster-broadcast",
            format!("node_grpc_addrs = {peers}"),
        );
    }
    let scx = builder.build().await;
    if clustered {
        scx.node
            .start_grpc_server(scx.clone(), config.grpc_listen, true, false);
        rmqtt_cluster_broadcast::register(&scx, true, false)
            .await
            .map_err(|e| format!("cluster: {e}"))?;
    }
    if config.max_retained_messages > 0 {
        rmqtt_retainer::register(&scx, true, false)
            .await
            .map_err(|e| format!("retainer: {e}"))?;
    }
    if config.access_keys {
        crate::plugin::register(&scx, &config).await?;
    }
    let listener = Builder::new()
        .name("external/tcp")
        .laddr(config.mqtt_listen)
        // Clients without a username would skip the authentication hook.
        .allow_anonymous(!config.access_keys)
        .bind()
        .and_then(|b| b.tcp())
        .map_err(|e| format!("listener {}: {e}", config.mqtt_listen))?;
    log::info!(
        "node {} listening: mqtt {}, grpc {}",
        config.node_id,
        config.mqtt_listen,
        config.grpc_listen
    );
    MqttServer::new(scx)
        .listener(listener)
        .build()
        .run()
        .await
        .map_err(|e| e.to_string())
}
