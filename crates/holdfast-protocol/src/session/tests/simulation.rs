//! Seeded simulation: devices and a relay over connections that deliver late and drop,
//! with storage that answers in any order. Checked against the storage's log, not
//! against the sessions' own view: every device ends with each space's whole log applied
//! once, in order, and every entry it wrote stored exactly once.

use super::*;

#[test]
fn devices_converge_over_a_lossy_network() {
    let seed = seed();
    let runs = std::env::var("HOLDFAST_SIMULATIONS")
        .ok()
        .map_or(100, |value| {
            value.parse().expect("HOLDFAST_SIMULATIONS is a number")
        });
    let mut rng = Rng::new(seed);
    for run in 0..runs {
        Simulation::new(&mut rng).run(&mut rng, &format!("HOLDFAST_SEED={seed}, run {run}"));
    }
}

const SPACES: [&str; 2] = ["team", "news"];

/// A device as its sync worker sees it: what it applied, its outbox, its connection.
struct SimDevice {
    /// What it holds of each space.
    replicas: BTreeMap<SpaceId, Replica>,
    /// Entries written and not yet acked `Stored` or `Duplicate`.
    outbox: Vec<PushEntry>,
    written: Vec<EventId>,
    session: Option<ClientSession>,
    relay: Option<RelaySession>,
    to_relay: VecDeque<Vec<u8>>,
    to_device: VecDeque<Vec<u8>>,
    subscribed: Vec<SpaceId>,
}

/// What a device applied of one space's log, and the cursor stored with it.
#[derive(Default)]
struct Replica {
    /// (seq, event id) of each applied entry, in the order applied.
    applied: Vec<(u64, EventId)>,
    cursor: Option<Cursor>,
}

/// Work handed to storage and not answered yet; the device index and its connection's
/// generation, so answers to a dropped connection are discarded.
enum Pending {
    Store(usize, u64, RequestId, Vec<PushEntry>),
    Pull(usize, u64, RequestId, SpaceId, Cursor),
    Bootstrap(usize, u64, RequestId),
}

struct Simulation {
    storage: FakeStorage,
    devices: Vec<SimDevice>,
    generations: Vec<u64>,
    pending: Vec<Pending>,
    per_pull: usize,
    event_next: u32,
}

impl Simulation {
    fn new(rng: &mut Rng) -> Self {
        let count = 2 + rng.below(2);
        let devices = (0..count)
            .map(|_| SimDevice {
                replicas: SPACES
                    .iter()
                    .map(|name| (space(name), Replica::default()))
                    .collect(),
                outbox: Vec::new(),
                written: Vec::new(),
                session: None,
                relay: None,
                to_relay: VecDeque::new(),
                to_device: VecDeque::new(),
                subscribed: Vec::new(),
            })
            .collect();
        Self {
            storage: FakeStorage::default(),
            devices,
            generations: vec![0; count],
            pending: Vec::new(),
            per_pull: 1 + rng.below(3),
            event_next: 0,
        }
    }

    fn run(mut self, rng: &mut Rng, context: &str) {
        for id in 0..self.devices.len() {
            self.connect(id);
        }
        for _ in 0..200 {
            let id = rng.below(self.devices.len());
            match rng.below(12) {
                0 | 1 => self.write(rng, id),
                2..=4 => {
                    self.deliver_to_relay(id);
                }
                5..=7 => {
                    self.deliver_to_device(id);
                }
                8 | 9 => self.answer(rng),
                10 if rng.below(4) == 0 => self.disconnect(id),
                _ => {
                    if self.devices[id].session.is_none() {
                        self.connect(id);
                    }
                }
            }
        }
        // Heal the network and let everything settle.
        for id in 0..self.devices.len() {
            if self.devices[id].session.is_none() {
                self.connect(id);
            }
        }
        let mut quiet = false;
        for _ in 0..100_000 {
            let mut progressed = !self.pending.is_empty();
            while !self.pending.is_empty() {
                self.answer(rng);
            }
            for id in 0..self.devices.len() {
                progressed |= self.deliver_to_device(id);
                progressed |= self.deliver_to_relay(id);
            }
            if !progressed {
                quiet = true;
                break;
            }
        }
        assert!(quiet, "{context}: never settled");
        self.check(context);
    }

    fn check(&self, context: &str) {
        for (id, device) in self.devices.iter().enumerate() {
            assert!(
                device.outbox.is_empty(),
                "{context}: device {id} has unacked entries"
            );
            for name in SPACES {
                let log = self
                    .storage
                    .logs
                    .get(&space(name))
                    .map_or(&[][..], Vec::as_slice);
                let expected: Vec<(u64, EventId)> =
                    log.iter().map(|e| (e.seq, e.event_id)).collect();
                let applied = &device.replicas[&space(name)].applied;
                assert_eq!(applied, &expected, "{context}: device {id}, space {name}");
            }
            for event_id in &device.written {
                let copies: usize = self
                    .storage
                    .logs
                    .values()
                    .map(|log| log.iter().filter(|e| e.event_id == *event_id).count())
                    .sum();
                assert_eq!(copies, 1, "{context}: device {id}, event {event_id}");
            }
        }
    }

    fn connect(&mut self, id: usize) {
        self.generations[id] += 1;
        let device = &mut self.devices[id];
        let spaces = device
            .replicas
            .iter()
            .map(|(space, replica)| crate::frame::SpaceCursor {
                space: space.clone(),
                cursor: replica.cursor,
            })
            .collect();
        let config = ClientConfig::new(DeviceId::from_bytes([id as u8; 16]), Token::new("owner"));
        let mut session = ClientSession::new(config, spaces, 0);
        let mut effects = session.start(0);
        // The outbox is sent again on every connection, with the same event ids.
        effects.extend(session.push(device.outbox.clone()));
        device.session = Some(session);
        let mut relay_config = relay_config();
        relay_config.limits.pushes_in_flight_max = 2;
        relay_config.limits.batch_entries_max = 3;
        relay_config.push_rate_per_sec = 0;
        device.relay = Some(relay_session(relay_config));
        device.to_relay.clear();
        device.to_device.clear();
        self.device_effects(id, effects);
    }

    fn disconnect(&mut self, id: usize) {
        let device = &mut self.devices[id];
        device.session = None;
        device.relay = None;
        device.subscribed.clear();
    }

    fn write(&mut self, rng: &mut Rng, id: usize) {
        self.event_next += 1;
        let n = self.event_next;
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        let entry = PushEntry {
            event_id: EventId::from_bytes(bytes),
            space: space(SPACES[rng.below(SPACES.len())]),
            record: RecordId::from_bytes(bytes),
            changes: vec![n.to_be_bytes().to_vec()],
        };
        let device = &mut self.devices[id];
        device.outbox.push(entry.clone());
        device.written.push(entry.event_id);
        if let Some(session) = &mut device.session {
            let effects = session.push(vec![entry]);
            self.device_effects(id, effects);
        }
    }

    /// Delivers the next message to the relay, if it reads; whether one was delivered.
    fn deliver_to_relay(&mut self, id: usize) -> bool {
        let device = &mut self.devices[id];
        let Some(relay) = device.relay.as_mut().filter(|relay| relay.wants_read()) else {
            return false;
        };
        let Some(bytes) = device.to_relay.pop_front() else {
            return false;
        };
        let effects = relay.handle_bytes(&bytes, 0);
        self.relay_effects(id, effects);
        true
    }

    /// Delivers the next message to the device; whether one was delivered.
    fn deliver_to_device(&mut self, id: usize) -> bool {
        let device = &mut self.devices[id];
        let Some(session) = &mut device.session else {
            return false;
        };
        let Some(bytes) = device.to_device.pop_front() else {
            return false;
        };
        let effects = session.handle_bytes(&bytes, 0);
        self.device_effects(id, effects);
        true
    }

    /// Storage finishes one piece of work, chosen at random.
    fn answer(&mut self, rng: &mut Rng) {
        if self.pending.is_empty() {
            return;
        }
        match self.pending.swap_remove(rng.below(self.pending.len())) {
            Pending::Store(id, generation, request_id, entries) => {
                // Durable whether or not the connection is still there to hear about it.
                let (results, stored) = self.storage.store(entries);
                if self.generations[id] == generation {
                    if let Some(relay) = &mut self.devices[id].relay {
                        let effects = relay.handle_store_result(request_id, results).unwrap();
                        self.relay_effects(id, effects);
                    }
                }
                // Live to every subscribed session, the pusher's too: its cursor moves past
                // its own entries like any other.
                for (space, entry) in stored {
                    let next_cursor = Cursor {
                        epoch: 1,
                        seq: entry.seq,
                    };
                    for other in 0..self.devices.len() {
                        if let Some(relay) = &mut self.devices[other].relay {
                            let effects = relay.handle_live(
                                &space,
                                std::slice::from_ref(&entry),
                                next_cursor,
                            );
                            self.relay_effects(other, effects);
                        }
                    }
                }
            }
            Pending::Pull(id, generation, request_id, space, cursor) => {
                if self.generations[id] != generation {
                    return;
                }
                let reply = self.storage.pull(&space, cursor, self.per_pull);
                if let Some(relay) = &mut self.devices[id].relay {
                    let effects = relay.handle_pulled(request_id, reply).unwrap();
                    self.relay_effects(id, effects);
                }
            }
            Pending::Bootstrap(id, generation, request_id) => {
                if self.generations[id] != generation {
                    return;
                }
                let reply = self.storage.bootstrap();
                if let Some(relay) = &mut self.devices[id].relay {
                    let effects = relay.handle_pulled(request_id, reply).unwrap();
                    self.relay_effects(id, effects);
                }
            }
        }
    }

    fn relay_effects(&mut self, id: usize, effects: Vec<RelayEffect>) {
        let generation = self.generations[id];
        for effect in effects {
            match effect {
                RelayEffect::Send(frame) => self.devices[id]
                    .to_device
                    .push_back(encode(&frame).unwrap()),
                RelayEffect::Subscribe { spaces } => self.devices[id].subscribed = spaces,
                RelayEffect::Store {
                    request_id,
                    entries,
                } => {
                    self.pending
                        .push(Pending::Store(id, generation, request_id, entries));
                }
                RelayEffect::Pull {
                    request_id,
                    space,
                    cursor,
                    ..
                } => {
                    self.pending
                        .push(Pending::Pull(id, generation, request_id, space, cursor));
                }
                RelayEffect::Bootstrap { request_id, .. } => {
                    self.pending
                        .push(Pending::Bootstrap(id, generation, request_id));
                }
                other => panic!("unexpected relay effect {other:?}"),
            }
        }
    }

    fn device_effects(&mut self, id: usize, effects: Vec<ClientEffect>) {
        let mut effects = VecDeque::from(effects);
        while let Some(effect) = effects.pop_front() {
            let device = &mut self.devices[id];
            match effect {
                ClientEffect::Send(frame) => device.to_relay.push_back(encode(&frame).unwrap()),
                // Applied at once, with its cursor, as one transaction would.
                ClientEffect::Apply {
                    space,
                    entries,
                    next_cursor,
                } => {
                    let replica = device.replicas.get_mut(&space).unwrap();
                    let Replica { applied, cursor } = replica;
                    applied.extend(entries.iter().map(|e| (e.seq, e.event_id)));
                    *cursor = Some(next_cursor);
                    if let Some(session) = &mut device.session {
                        effects.extend(session.handle_applied(&space));
                    }
                }
                ClientEffect::ApplySnapshot { space, cursor, .. } => {
                    let replica = device.replicas.get_mut(&space).unwrap();
                    if cursor.is_some() {
                        replica.cursor = cursor;
                    }
                    if let Some(session) = &mut device.session {
                        effects.extend(session.handle_applied(&space));
                    }
                }
                ClientEffect::Acked(results) => {
                    for result in results {
                        if matches!(
                            result.outcome,
                            Outcome::Stored { .. } | Outcome::Duplicate { .. }
                        ) {
                            device.outbox.retain(|e| e.event_id != result.event_id);
                        }
                    }
                }
                ClientEffect::Welcomed { .. } => {}
                other => panic!("unexpected device effect {other:?}"),
            }
        }
    }
}
