//! `crm-ledger schemas [--check DIR | --write DIR]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

pub fn schemas(args: crate::cli::SchemasArgs) -> Result<ExitCode> {
    if let Some(dir) = args.check {
        let problems = check(&dir)?;
        if problems.is_empty() {
            println!(
                "{}: all {} schemas match the code",
                dir.display(),
                crm_events::schema::all().len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        for p in &problems {
            eprintln!("{}/{p}", dir.display());
        }
        eprintln!(
            "{} problem(s): regenerate with `crm-ledger schemas --write {}`",
            problems.len(),
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(file) = args.docs {
        std::fs::write(&file, crm_events::schema::markdown())?;
        println!("wrote {}", file.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = args.write {
        std::fs::create_dir_all(&dir)?;
        for f in crm_events::schema::all() {
            std::fs::write(dir.join(&f.file_name), f.text())?;
        }
        println!(
            "wrote {} schemas to {}",
            crm_events::schema::all().len(),
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let all: BTreeMap<String, serde_json::Value> = crm_events::schema::all()
        .into_iter()
        .map(|f| (f.file_name, f.schema))
        .collect();
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(ExitCode::SUCCESS)
}

/// Differences between DIR and the schemas generated from the code.
pub fn check(dir: &Path) -> Result<Vec<String>> {
    let mut found = BTreeMap::new();
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(&path)?;
        match serde_json::from_str(&text) {
            Ok(v) => {
                found.insert(name, v);
            }
            Err(e) => problems.push(format!("{name}: not JSON: {e}")),
        }
    }
    problems.extend(crm_events::schema::compare(&found));
    Ok(problems)
}
