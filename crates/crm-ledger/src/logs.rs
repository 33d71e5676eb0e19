//! Opening the log a command names: the embedded log of a data dir, or a
//! Kafka topic.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use crm_log::embedded::EmbeddedLog;
use crm_log::Log;
use crm_log_kafka::{KafkaConfig, KafkaLog};

use crate::cli::{KafkaClients, LogArgs, LogBackend};

/// An open log; `embedded` is set for the embedded backend (it is closed
/// explicitly at shutdown so its writer drains).
pub struct Opened {
    pub log: Arc<dyn Log>,
    pub embedded: Option<Arc<EmbeddedLog>>,
}

/// The Kafka settings of the command line.
pub fn kafka_config(args: &LogArgs) -> Result<KafkaConfig> {
    let Some(brokers) = args.brokers.as_deref().filter(|b| !b.trim().is_empty()) else {
        bail!("--log kafka needs --brokers HOST:PORT (or CRM_LEDGER_BROKERS)");
    };
    let mut config = KafkaConfig::new(brokers)
        .topic(args.topic.clone())
        .partitions(args.partitions);
    config.replication_factor = args.replication_factor;
    for p in &args.kafka_properties {
        let to = match p.clients {
            KafkaClients::All => &mut config.properties,
            KafkaClients::Producer => &mut config.producer_properties,
            KafkaClients::Readers => &mut config.consumer_properties,
        };
        to.push((p.key.clone(), p.value.clone()));
    }
    Ok(config)
}

/// Connects to the Kafka topic of the command line (creating it if missing).
pub async fn open_kafka(args: &LogArgs) -> Result<Arc<KafkaLog>> {
    let config = kafka_config(args)?;
    let log = KafkaLog::connect(config).await.with_context(|| {
        format!(
            "connecting to Kafka at {}",
            args.brokers.as_deref().unwrap_or("")
        )
    })?;
    Ok(Arc::new(log))
}

/// Opens the log of the command line; `embedded` opens the embedded one.
pub async fn open(
    args: &LogArgs,
    embedded: impl FnOnce() -> Result<Arc<EmbeddedLog>>,
) -> Result<Opened> {
    match args.backend {
        LogBackend::Embedded => {
            let log = embedded()?;
            Ok(Opened {
                log: log.clone(),
                embedded: Some(log),
            })
        }
        LogBackend::Kafka => {
            let log: Arc<dyn Log> = open_kafka(args).await?;
            Ok(Opened {
                log,
                embedded: None,
            })
        }
    }
}
