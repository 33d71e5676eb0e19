//! The backend contract of `crm_log::testkit`, against a real broker.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_backend_passes_the_log_contract() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    crm_log::testkit::run_all(|| common::fresh_log(&brokers)).await;
}
