//! The read models this binary runs.

use std::sync::Arc;

use anyhow::{bail, Result};
use crm_projection::Projection;

/// Every projection, in a fixed order.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(crm_customers::CustomersProjection),
        Arc::new(crm_cases::CasesProjection),
        Arc::new(crm_campaigns::CampaignsProjection),
    ]
}

/// The projections named (`customers,cases`), checked.
pub fn named(names: &[String]) -> Result<Vec<Arc<dyn Projection>>> {
    let all = all();
    let mut out = Vec::new();
    for n in names {
        let n = n.trim();
        if n.is_empty() {
            continue;
        }
        match all.iter().find(|p| p.name() == n) {
            Some(p) => out.push(p.clone()),
            None => bail!(
                "unknown projection {n:?}; known: {}",
                all.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(out)
}
