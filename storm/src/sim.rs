//! The event loop: one fake millisecond clock, one queue, the collector,
//! the network and the clients; a run from boot to the last agent back.

use agent_core::TransportError;

use crate::client::Clients;
use crate::fleet::{Fleet, FleetMemory};
use crate::model::Models;
use crate::net::{Ev, Net, Payload};
use crate::record::Recorder;
use crate::report::Report;
use crate::rng::SplitMix64;
use crate::scenario::{Scenario, Strategy, BOOT_SPREAD_MS};
use crate::server::{Answer, Outcome, Server};

/// Fewest and most ms of one-way latency per client.
pub const LATENCY_MS: (u64, u64) = (1, 20);

/// A run processing more events than this is taken to loop (no scenario
/// of the matrix comes near it).
const MAX_EVENTS: u64 = 2_000_000_000;

/// Runs `sc` to its end and reports it. Deterministic: the same scenario
/// gives the same report.
pub fn run(sc: &Scenario) -> Report {
    let n = sc.agents;
    assert!(n > 0 && sc.rate > 0 && (1..=2).contains(&sc.restarts), "{sc}");
    let mut rng = SplitMix64::new(sc.seed);
    let ids: Vec<String> = (0..n).map(|i| format!("agent-{i:05}")).collect();
    let latency: Vec<u64> = (0..n).map(|_| rng.range(LATENCY_MS.0, LATENCY_MS.1)).collect();
    let boot: Vec<u64> = (0..n).map(|_| rng.range(0, BOOT_SPREAD_MS)).collect();
    let seeds: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    let world = World {
        sc: *sc,
        net: Net::new(latency),
        server: Server::new(sc.server, sc.rate, n, rng.next_u64()),
        rec: Recorder::new(sc.timeline(), n),
        ids: &ids,
    };
    match sc.strategy {
        Strategy::Agent => {
            let mut mem = FleetMemory::new(n);
            let mut fleet = Fleet::new(&mut mem, &ids, &seeds);
            world.run(&mut fleet, &boot)
        }
        model => world.run(&mut Models::new(model, &seeds), &boot),
    }
}

struct World<'i> {
    sc: Scenario,
    net: Net,
    server: Server,
    rec: Recorder,
    ids: &'i [String],
}

impl World<'_> {
    fn run<C: Clients>(mut self, clients: &mut C, boot: &[u64]) -> Report {
        for (i, &t) in boot.iter().enumerate() {
            self.net.set_timer(i, Some(t));
        }
        let timeline = self.rec.timeline().clone();
        for &(down, up) in &timeline.restarts {
            self.net.queue.push(down, Ev::ServerDown);
            self.net.queue.push(up, Ev::ServerUp);
        }
        let (mut events, mut now) = (0u64, 0u64);
        while let Some((t, ev)) = self.net.queue.pop() {
            if t > timeline.limit || self.rec.all_back() {
                break;
            }
            now = t;
            events += 1;
            assert!(events < MAX_EVENTS, "{}: no end in sight at {now} ms", self.sc);
            self.step(now, ev, clients);
        }
        Report::new(self.sc, &self.rec, now, events, clients.anomalies())
    }

    fn step<C: Clients>(&mut self, now: u64, ev: Ev, clients: &mut C) {
        let net = &mut self.net;
        match ev {
            Ev::Timer { client, gen } => {
                if net.timer_fired(client as usize, gen) {
                    clients.on_timer(client as usize, now, net);
                }
            }
            Ev::Syn { conn } => {
                let client = net.client_of(conn);
                let ok = self.server.is_up();
                if ok {
                    net.conns[conn as usize].accepted = true;
                } else {
                    self.rec.refused_connect(now);
                }
                net.queue.push(now + net.latency(client), Ev::ConnectOutcome { conn, ok });
            }
            Ev::ConnectOutcome { conn, ok } => {
                if net.is_current(conn) {
                    clients.on_connect(net.client_of(conn), now, ok, net);
                }
            }
            Ev::ToServer { conn, payload } => {
                if net.server_gets(conn) {
                    self.serve(now, conn, payload);
                }
            }
            Ev::ToClient { conn, payload } => {
                if net.client_gets(conn) {
                    clients.on_payload(net.client_of(conn), now, payload, net);
                }
            }
            Ev::Lost { conn, error } => {
                if net.is_current(conn) {
                    clients.on_lost(net.client_of(conn), now, error, net);
                }
            }
            Ev::ServerDown => {
                self.server.stop();
                net.kill_all(now);
            }
            Ev::ServerUp => self.server.start(),
        }
    }

    /// The collector handles what arrived on `conn`.
    fn serve(&mut self, now: u64, conn: u32, payload: Payload) {
        let client = self.net.client_of(conn);
        let (answer, reply) = match payload {
            Payload::Frame(bytes) => match self.server.on_frame(now, &bytes, &mut self.net.conns[conn as usize].tx_seq) {
                Outcome::Hello { answer, reply } => (answer, reply.map(Payload::Frame)),
                Outcome::Reply(r) => return self.net.reply(now, conn, Payload::Frame(r)),
                Outcome::Nothing => return,
            },
            Payload::Hello => {
                let answer = self.server.decide(&self.ids[client], now);
                (answer, (answer != Answer::Refuse).then_some(Payload::Answer(answer)))
            }
            Payload::Answer(_) => return,
        };
        self.rec.hello(now, client, answer);
        if let Some(reply) = reply {
            self.net.reply(now, conn, reply);
        }
        match answer {
            Answer::Accept { .. } => {}
            // Reject, then close: the Reject still arrives.
            Answer::Busy { .. } => self.net.conns[conn as usize].server_closed = true,
            Answer::Refuse => self.net.drop_conn(now, conn, TransportError::Refused),
        }
    }
}
