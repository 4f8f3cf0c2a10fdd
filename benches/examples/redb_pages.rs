//! What a redb commit costs per B-tree leaf it dirties, on the disk at DIR (default /tmp):
//! the measurement behind the store's two-leaf write layout (docs/storage.md) and the
//! write-ahead-fold estimate in BENCHMARKS.md.
//!
//! `cargo run --release -p holdfast-benches --example redb_pages -- [DIR]`

use std::time::Instant;

use redb::{Database, TableDefinition};

const TABLES: [TableDefinition<u64, &[u8]>; 7] = [
    TableDefinition::new("t0"),
    TableDefinition::new("t1"),
    TableDefinition::new("t2"),
    TableDefinition::new("t3"),
    TableDefinition::new("t4"),
    TableDefinition::new("t5"),
    TableDefinition::new("t6"),
];
const RECORDS: TableDefinition<(u128, u32), &[u8]> = TableDefinition::new("records");
const LOG: TableDefinition<(u8, u64), &[u8]> = TableDefinition::new("log");

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp".into());
    let dir = tempfile::tempdir_in(dir).expect("tempdir");
    // One commit of ~700 bytes spread over 1, 2, 4 or 7 tables (one leaf each).
    for tables in [1, 2, 4, 7] {
        let db = Database::create(dir.path().join(format!("t{tables}.redb"))).expect("db");
        let payload = vec![7u8; 700 / tables];
        let n = 2000u64;
        let start = Instant::now();
        for i in 0..n {
            let txn = db.begin_write().expect("begin");
            for table in &TABLES[..tables] {
                txn.open_table(*table)
                    .expect("table")
                    .insert(i, payload.as_slice())
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{tables} leaves per commit: {us:.0} us/commit");
    }
    // Groups of 4 writes over 100 records: each write's record rows plus a shared log row,
    // against the log rows alone (what a write-ahead fold would leave on the hot path).
    for with_records in [true, false] {
        let db = Database::create(dir.path().join(format!("g{with_records}.redb"))).expect("db");
        let records: Vec<u128> = (0..100u128).map(|i| (1 << 100) + i * 7919).collect();
        let txn = db.begin_write().expect("begin");
        {
            let mut t = txn.open_table(RECORDS).expect("table");
            for r in &records {
                t.insert((*r, 0), [1u8; 150].as_slice()).expect("insert");
                t.insert((*r, 1), [2u8; 2000].as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
        let (groups, per) = (750u64, 4u64);
        let mut chunks = vec![2u32; records.len()];
        let start = Instant::now();
        for g in 0..groups {
            let txn = db.begin_write().expect("begin");
            {
                let mut t = txn.open_table(RECORDS).expect("table");
                let mut log = txn.open_table(LOG).expect("table");
                for w in 0..per {
                    let r = ((g * per + w) % 100) as usize;
                    if with_records {
                        t.insert((records[r], 0), [1u8; 150].as_slice())
                            .expect("insert");
                        t.insert((records[r], chunks[r]), [3u8; 200].as_slice())
                            .expect("insert");
                        chunks[r] += 1;
                    }
                    log.insert((1, g * per + w), [4u8; 450].as_slice())
                        .expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / groups as f64;
        let what = if with_records {
            "record rows + log row"
        } else {
            "log row only"
        };
        println!("groups of {per} writes, {what}: {us:.0} us/group");
    }
}
