// raii.cpp - edge_agent.h from C++11 through a small RAII wrapper: the
// wrapper owns the agent's storage and buffers (no heap), initializes in the
// constructor, deinitializes in the destructor, and cannot be copied. The
// program connects to the in-memory collector of fake_server.h, delivers
// records, answers a task and checks every record was acked.
#include "edge_agent.h"
#include "fake_server.h"

#include <cstdio>
#include <cstring>

namespace edge {

// One agent with its memory, sized at compile time.
template <size_t RingBytes, size_t RxBytes, size_t EventBytes, size_t TxBytes>
class Agent {
public:
    Agent(const ea_config &cfg, const ea_identity &id)
        : result_(ea_agent_init(&agent_, sizeof agent_, &cfg, &id, ring_, RingBytes, rx_, RxBytes, events_,
                                EventBytes)) {}
    ~Agent() {
        if (result_ == EA_OK) ea_agent_deinit(&agent_);
    }
    Agent(const Agent &) = delete;
    Agent &operator=(const Agent &) = delete;

    ea_result init_result() const { return result_; }
    ea_result push(uint64_t now, uint32_t type, const void *p, size_t n) {
        return ea_agent_push(&agent_, now, type, now, static_cast<const uint8_t *>(p), n);
    }
    ea_result timeout(uint64_t now) { return ea_agent_handle_timeout(&agent_, now); }
    ea_result connected(uint64_t now) { return ea_agent_handle_connected(&agent_, now); }
    ea_result received(uint64_t now, const uint8_t *p, size_t n) { return ea_agent_handle_received(&agent_, now, p, n); }
    ea_result answer(uint64_t now, const char *token, size_t len, const char *msg) {
        return ea_agent_task_result(&agent_, now, reinterpret_cast<const uint8_t *>(token), len, 0,
                                    reinterpret_cast<const uint8_t *>(msg), std::strlen(msg));
    }
    // The next frame to send (empty when none).
    size_t transmit(uint64_t now) {
        size_t n = 0;
        return ea_agent_poll_transmit(&agent_, now, tx_, TxBytes, &n) == EA_OK ? n : 0;
    }
    const uint8_t *tx() const { return tx_; }
    bool event(ea_event &ev) { return ea_agent_poll_event(&agent_, &ev) == EA_OK && ev.kind != EA_EVENT_NONE; }
    uint64_t deadline() const {
        uint64_t d = EA_NEVER;
        ea_agent_poll_timeout(&agent_, &d);
        return d;
    }
    ea_stats stats() const {
        ea_stats s;
        std::memset(&s, 0, sizeof s);
        ea_agent_stats(&agent_, &s);
        return s;
    }

private:
    ea_agent agent_;
    uint8_t ring_[RingBytes];
    uint8_t rx_[RxBytes];
    uint8_t events_[EventBytes];
    uint8_t tx_[TxBytes];
    ea_result result_;
};

} // namespace edge

static const char kId[] = "cpp-agent";
static fs_server server;

int main() {
    ea_config cfg = ea_config_default();
    cfg.flush_interval_ms = 10;
    ea_identity id;
    std::memset(&id, 0, sizeof id);
    id.agent_id = reinterpret_cast<const uint8_t *>(kId);
    id.agent_id_len = sizeof kId - 1;

    static edge::Agent<8192, 2048, 1024, 8192> agent(cfg, id);
    if (agent.init_result() != EA_OK) {
        std::printf("raii: init: %s\n", ea_result_message(agent.init_result()));
        return 1;
    }
    fs_init(&server, 3001);
    uint64_t now = 0;
    bool up = false, answered = false;
    const unsigned kRecords = 50;
    unsigned pushed = 0;
    for (int step = 0; step < 20000; step++) {
        if (pushed < kRecords) {
            uint8_t p[8] = {static_cast<uint8_t>(pushed), 0, 0, 0, 'c', 'p', 'p', '!'};
            if (agent.push(now, 3001, p, sizeof p) == EA_OK) pushed++;
        }
        agent.timeout(now);
        for (int round = 0; round < 4; round++) {
            while (size_t n = agent.transmit(now))
                if (up) fs_feed(&server, agent.tx(), n);
            ea_event ev;
            while (agent.event(ev)) {
                if (ev.kind == EA_EVENT_CONNECT) {
                    fs_connection_reset(&server);
                    up = true;
                    agent.connected(now);
                } else if (ev.kind == EA_EVENT_CONNECTED) {
                    fs_send_task(&server, "", 7, "status", "cpp-task");
                } else if (ev.kind == EA_EVENT_TASK) {
                    agent.answer(now, reinterpret_cast<const char *>(ev.token), ev.token_len, "fine");
                    answered = true;
                } else if (ev.kind == EA_EVENT_DISCONNECT) {
                    up = false;
                }
            }
            if (up && server.out_len) {
                size_t n = server.out_len;
                server.out_len = 0;
                agent.received(now, server.out, n);
            }
        }
        ea_stats st = agent.stats();
        if (pushed == kRecords && st.drained && server.task_results == 1) break;
        uint64_t d = agent.deadline();
        now = d > now + 5 ? now + 5 : (d > now ? d : now + 1);
    }
    ea_stats st = agent.stats();
    bool ok = answered && st.drained && st.pushed == st.acked && server.app_records == kRecords &&
              server.task_results == 1 && std::strcmp(server.last_token, "cpp-task") == 0 && st.acked == server.stored;
    std::printf("raii: pushed %llu acked %llu stored %llu app %llu task results %llu: %s\n",
                static_cast<unsigned long long>(st.pushed), static_cast<unsigned long long>(st.acked),
                static_cast<unsigned long long>(server.stored), static_cast<unsigned long long>(server.app_records),
                static_cast<unsigned long long>(server.task_results), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
