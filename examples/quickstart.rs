//! The whole flow of an access key: generate, restrict, store, authenticate, scope.
//!
//! Run with `cargo run --example quickstart --features serde`.

use std::error::Error;

use structure_access::{
    AccessKey, ApplicationId, Authenticator, DeviceRecord, HashPolicy, Restriction,
    VerificationCache,
};

fn main() -> Result<(), Box<dyn Error>> {
    // 1. Provision a key of one application, restricted to trucks, plus one
    //    gateway by ID.
    let app: ApplicationId = "64b1f0c2a7e3d95b8c4f2a10".parse()?;
    let restriction: Restriction = "vehicle=truck, gw-01".parse()?;
    println!("restriction (canonical): {restriction}");
    let policy = HashPolicy::default();
    let new = AccessKey::generate_os(app, restriction.into(), &policy)?;
    let record = new.record.with_description("north fleet")?;

    // The record goes to the database; it holds a verifier, never the secret.
    println!("record: {}", serde_json::to_string(&record)?);
    // The secret is shown once, here, and never again.
    println!("key:    {}", record.key());
    println!(
        "secret: {}  (shown once; store it safely)",
        new.secret.expose_secret()
    );

    // 2. Devices connect: username = key, password = secret, client id = device ID.
    let auth = Authenticator::new(policy).with_cache(VerificationCache::new(1_000)?);
    let truck =
        DeviceRecord::new(app, "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?).with_tag("vehicle", "truck");
    let car =
        DeviceRecord::new(app, "6a3c9d2f0b5e4c8d7f2a1b3c".parse()?).with_tag("vehicle", "car");
    let password = new.secret.expose_secret();

    let principal = auth.authenticate_password(record.key(), Some(&record), password, &truck)?;
    println!("truck authenticated: device {}", principal.device_id());

    match auth.authenticate_password(record.key(), Some(&record), password, &car) {
        Ok(_) => return Err("the car must be refused".into()),
        // The server logs the cause; the client only ever gets "bad credentials".
        Err(err) => println!(
            "car refused: {err} (client is told: {})",
            err.public_message()
        ),
    }

    // A repeat connect is answered by the cache, without Argon2.
    auth.authenticate_password(record.key(), Some(&record), password, &truck)?;
    let stats = auth.cache().map(|c| c.stats()).unwrap_or_default();
    println!("cache: {} hit(s), {} miss(es)", stats.hits, stats.misses);

    // 3. At runtime: what may the truck see?
    let gateway = DeviceRecord::new(app, "gw-01".parse()?);
    // Another application's truck: never seen, whatever the key.
    let other_app = "64b1f0c2a7e3d95b8c4f2a11".parse()?;
    let foreign = DeviceRecord::new(other_app, "7b4d0e3a1c6f5d9e8a3b2c4d".parse()?)
        .with_tag("vehicle", "truck");
    for (name, device) in [
        ("another truck", &truck),
        ("the car", &car),
        ("the gateway", &gateway),
        ("another application's truck", &foreign),
    ] {
        let verdict = if principal.can_see(device) {
            "sees"
        } else {
            "does not see"
        };
        println!("the truck {verdict} {name}");
    }
    Ok(())
}
