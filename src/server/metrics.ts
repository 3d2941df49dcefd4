import type { ServerStore } from './plan-delivery';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobReport } from '../github';

export type DeliveryResult = 'accepted' | 'duplicate' | 'bad_signature' | 'too_large' | 'ignored' | 'malformed';

/** The server's Prometheus metrics (prom-client), served at /metrics on the admin listener. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly deliveries = new Counter({ name: 'stockade_webhook_deliveries_total', help: 'Webhook deliveries by result', labelNames: ['result'], registers: [this.registry] });
  readonly jobs = new Counter({ name: 'stockade_jobs_total', help: 'Finished jobs by conclusion', labelNames: ['conclusion'], registers: [this.registry] });
  readonly queueWait = new Histogram({ name: 'stockade_queue_wait_seconds', help: 'Time from acceptance to start', buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600], registers: [this.registry] });
  readonly jobDuration = new Histogram({ name: 'stockade_job_duration_seconds', help: 'Job wall time', buckets: [1, 5, 15, 60, 300, 900, 3600, 21600], registers: [this.registry] });
  readonly stepDuration = new Histogram({ name: 'stockade_step_duration_seconds', help: 'Step wall time', buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 3600], registers: [this.registry] });
  readonly stepEnds = new Counter({ name: 'stockade_step_ends_total', help: 'Steps by how they ended (exit, timeout, out-of-memory, process-limit, output-limit, sandbox-error, …)', labelNames: ['reason'], registers: [this.registry] });
  readonly memoryPeak = new Histogram({ name: 'stockade_step_memory_peak_bytes', help: 'Peak memory of a step', buckets: [16, 64, 256, 1024, 4096].map((m) => m * 1024 ** 2), registers: [this.registry] });
  readonly networkBlocked = new Counter({ name: 'stockade_network_blocked_total', help: 'Blocked network attempts of jobs (anomaly signal): DNS queries refused and connections refused by the egress sidecar', labelNames: ['kind'], registers: [this.registry] });
  readonly networkAllowed = new Counter({ name: 'stockade_network_allowed_total', help: 'DNS answers and connections the egress sidecar allowed', labelNames: ['kind'], registers: [this.registry] });
  readonly egressBytes = new Counter({ name: 'stockade_egress_bytes_out_total', help: 'Bytes jobs sent out through the egress sidecar', registers: [this.registry] });
  readonly fencedWrites = new Counter({ name: 'stockade_fenced_writes_total', help: 'Writes of this host refused because its lease on the job had passed to another host (0 rows changed)', registers: [this.registry] });
  readonly hostLoss = new Counter({ name: 'stockade_jobs_taken_over_total', help: 'Running jobs whose host stopped renewing its lease, taken over by this host', labelNames: ['to'], registers: [this.registry] });
  readonly claimLatency = new Histogram({ name: 'stockade_claim_seconds', help: 'Time one claim transaction took', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [this.registry] });
  readonly quotaRefusals = new Counter({ name: 'stockade_quota_refusals_total', help: 'Jobs completed at once because a minutes quota was used up', labelNames: ['scope'], registers: [this.registry] });

  /** `helpersReady`: the job helpers made ahead and ready now (runner/helper-pool.ts). */
  constructor(store: ServerStore, helpersReady?: () => { networks: number; forwarders: number } | undefined) {
    collectDefaultMetrics({ register: this.registry, prefix: 'stockade_process_' });
    const registry = this.registry;
    new Gauge({
      name: 'stockade_helpers_ready',
      help: 'Job helpers made ahead and ready for the next job: job networks with their egress sidecar, results forwarders with loopback only',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const r = helpersReady?.() ?? { networks: 0, forwarders: 0 };
        this.set({ kind: 'network' }, r.networks);
        this.set({ kind: 'forwarder' }, r.forwarders);
      },
    });
    new Gauge({
      name: 'stockade_queue_depth',
      help: 'Jobs waiting or running, by repository and state',
      labelNames: ['repository', 'state'],
      registers: [registry],
      async collect() {
        const counts = await store.countsByRepository(['accepted', 'queued', 'running']);
        this.reset();
        for (const { repository, state, n } of counts) this.set({ repository, state }, n);
      },
    });
    for (const [name, help, field] of [
      ['stockade_fleet_host_capacity', 'Jobs each host of the fleet runs at once', 'capacity'],
      ['stockade_fleet_host_running', 'Jobs each host of the fleet is running, as of its last heartbeat', 'running'],
      ['stockade_fleet_host_heartbeat_age_seconds', 'Seconds since each host of the fleet last renewed its heartbeat', 'age'],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ['host', 'state'],
        registers: [registry],
        async collect() {
          this.reset();
          const now = Date.now();
          for (const h of await store.leases.hosts()) this.set({ host: h.id, state: h.draining ? 'draining' : 'serving' }, field === 'age' ? (now - h.heartbeatAt) / 1000 : h[field]);
        },
      });
    }
    new Gauge({
      name: 'stockade_quota_saturation',
      help: 'Used / limit of each minutes quota (1 = exhausted)',
      labelNames: ['scope', 'period'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { scope, quota } of await store.quotas.list()) {
          const u = await store.quotas.usage(scope);
          if (quota.minutesPerDay) this.set({ scope, period: 'day' }, u.dayMs / 60_000 / quota.minutesPerDay);
          if (quota.minutesPerMonth) this.set({ scope, period: 'month' }, u.monthMs / 60_000 / quota.minutesPerMonth);
        }
      },
    });
  }

  jobFinished(report: JobReport, durationMs: number): void {
    this.jobs.inc({ conclusion: report.conclusion });
    const n = report.network;
    if (n) {
      this.networkBlocked.inc({ kind: 'dns' }, n.dnsRefused);
      this.networkBlocked.inc({ kind: 'connection' }, n.connectionsRefused);
      this.networkAllowed.inc({ kind: 'dns' }, n.dnsAllowed);
      this.networkAllowed.inc({ kind: 'connection' }, n.connectionsAllowed);
      this.egressBytes.inc(n.bytesOut);
    }
    this.jobDuration.observe(durationMs / 1000);
    for (const s of report.steps) {
      this.stepDuration.observe(s.durationMs / 1000);
      this.stepEnds.inc({ reason: s.exitReason.startsWith('exit ') ? 'exit' : s.exitReason });
      if (s.peakMemoryBytes) this.memoryPeak.observe(s.peakMemoryBytes);
    }
  }
}
