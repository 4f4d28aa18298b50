//! A device, written as a Rust SDK would be: `DeviceCredentials` from the core
//! crate, `rumqttc` for MQTT. It connects to a broker running the plugin,
//! subscribes to its command topic, publishes its state, and exits 0 once it
//! has received one command (printing it).
//!
//! ```text
//! device --host HOST --port PORT --device ID --key KEY --state PAYLOAD [--timeout SECONDS] < secret
//! ```
//!
//! The secret is read from the first line of standard input (never from the
//! command line, where `ps` would show it). Each step is one line on stdout:
//! `connected`, `subscribed TOPIC`, `published TOPIC`, `command PAYLOAD`.
//! Errors go to stderr, exit status 1 (2 for a bad argument).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use structure_access::DeviceCredentials;

struct Args {
    host: String,
    port: u16,
    device: String,
    key: String,
    state: String,
    timeout: Duration,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: 1883,
        device: String::new(),
        key: String::new(),
        state: "{}".into(),
        timeout: Duration::from_secs(30),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => args.host = value,
            "--port" => args.port = value.parse().map_err(|e| format!("--port: {e}"))?,
            "--device" => args.device = value,
            "--key" => args.key = value,
            "--state" => args.state = value,
            "--timeout" => {
                args.timeout =
                    Duration::from_secs(value.parse().map_err(|e| format!("--timeout: {e}"))?);
            }
            _ => return Err(format!("unknown argument `{flag}`")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: cannot read the secret from stdin: {e}");
        return ExitCode::from(2);
    }
    // Validated here, offline: a typo in the secret fails now, not at the broker.
    let device = match DeviceCredentials::parse(
        &args.device,
        &args.key,
        line.trim_end_matches(['\r', '\n']),
    ) {
        Ok(device) => device,
        Err(e) => {
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}"));
            eprintln!("error: {e}{}", cause.unwrap_or_default());
            return ExitCode::from(2);
        }
    };
    match run(&args, &device) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args, device: &DeviceCredentials) -> Result<(), String> {
    let mut options = MqttOptions::new(device.client_id(), &args.host, args.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    // rumqttc keeps its own copy of the password for reconnections.
    options.set_credentials(device.username(), device.password().expose_secret());
    let (client, mut connection) = Client::new(options, 10);
    let (state, command) = (device.state_topic(), device.command_topic());
    client
        .subscribe(command.as_str(), QoS::AtLeastOnce)
        .map_err(|e| e.to_string())?;

    let deadline = Instant::now() + args.timeout;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or("timed out before a command arrived")?;
        let event = connection
            .recv_timeout(left)
            .map_err(|_| "timed out before a command arrived".to_owned())?
            .map_err(|e| format!("connection failed: {e}"))?;
        match event {
            Event::Incoming(Packet::ConnAck(_)) => println!("connected"),
            Event::Incoming(Packet::SubAck(ack)) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure))
                {
                    return Err(format!("subscription to `{command}` refused"));
                }
                println!("subscribed {command}");
                client
                    .publish(
                        state.as_str(),
                        QoS::AtLeastOnce,
                        false,
                        args.state.as_bytes(),
                    )
                    .map_err(|e| e.to_string())?;
            }
            Event::Incoming(Packet::PubAck(_)) => println!("published {state}"),
            Event::Incoming(Packet::Publish(message)) if message.topic == command.as_str() => {
                println!("command {}", String::from_utf8_lossy(&message.payload));
                let _ = client.disconnect();
                return Ok(());
            }
            _ => {}
        }
    }
}
