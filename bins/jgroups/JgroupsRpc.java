// One member of a JGroups 2.12 group, for the same workload as `thoth-rpc-perf`: every member
// has an RpcDispatcher serving a no-op method, and member 0 (the first in the view: the
// coordinator, since `jgroups-rpc.sh` starts the members one at a time) calls it on the whole
// group, itself included (`callRemoteMethods` with null destinations), with GET_FIRST or
// GET_ALL and a 5 s timeout. The calls carry Message.DONT_BUNDLE (regular, ordered messages,
// not bundled): with udp.xml's bundling (max_bundle_timeout 30 ms) every synchronous call
// waits for the bundler, about 30 ms a call, as JGroups warns for synchronous RPCs. Run by
// `jgroups-rpc.sh`, which starts MEMBERS of these.
//
// With OUTSTANDING 1 the calls are synchronous and each is timed from the call to its return;
// with OUTSTANDING K > 1 they are `callRemoteMethodsWithFuture` calls, a window of K in flight,
// each timed from its issue to its future's completion (the future's listener). When the view
// has MEMBERS members and every other member has called `ready` on it (a joiner may miss
// multicasts sent before its join completes), member 0 makes WARMUP calls in the same form
// (so that the JIT is warm, not timed), then CALLS timed ones; a call must end with at least
// one reply (first) or a reply from every member (all). It then prints one JSON line
//   {"system":"jgroups-2.12","stack":"udp.xml","mode":..,"members":..,"outstanding":..,
//    "calls":..,"p50_us":..,"p99_us":..,"p999_us":..,"calls_per_sec":..}
// (percentiles of the sorted samples, in microseconds; calls_per_sec: CALLS over the time from
// the first timed call to the last completion), calls `done` on the group and leaves. The
// other members serve until `done` arrives or member 0 leaves the view. Every wait is
// bounded; exit 3 on a timeout or a failed call.
//
// Usage: java JgroupsRpc CONFIG CLUSTER MEMBERS first|all OUTSTANDING CALLS WARMUP

import org.jgroups.Address;
import org.jgroups.JChannel;
import org.jgroups.Message;
import org.jgroups.ReceiverAdapter;
import org.jgroups.View;
import org.jgroups.blocks.GroupRequest;
import org.jgroups.blocks.MethodCall;
import org.jgroups.blocks.RequestOptions;
import org.jgroups.blocks.RpcDispatcher;
import org.jgroups.util.FutureListener;
import org.jgroups.util.RspList;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

public final class JgroupsRpc extends ReceiverAdapter {
    private static final long TIMEOUT_NS = 240_000_000_000L;
    private static final long CALL_TIMEOUT_MS = 5_000;
    private static final long WINDOW_WAIT_MS = 10_000;
    private static final MethodCall NOOP = new MethodCall("noop", new Object[0], new Class[0]);
    private static final MethodCall READY = new MethodCall("ready", new Object[0], new Class[0]);
    private static final MethodCall DONE = new MethodCall("done", new Object[0], new Class[0]);

    private final CountDownLatch done = new CountDownLatch(1);
    private final CountDownLatch ready;
    private volatile View view;

    private JgroupsRpc(int members) {
        ready = new CountDownLatch(members - 1);
    }

    // The served methods (public, found by name by the dispatcher).
    public void noop() {
    }

    public void ready() {
        ready.countDown();
    }

    public void done() {
        done.countDown();
    }

    @Override
    public void viewAccepted(View v) {
        view = v;
    }

    // A failed or timed-out run.
    private static final class Failed extends Exception {
        Failed(String what) {
            super(what);
        }
    }

    // One asynchronous call in flight: on completion it records its latency, checks its
    // replies and frees its place in the window. JGroups may call a listener twice (when the
    // future completes while `setListener` runs), so it acts once.
    private static final class Pending extends AtomicBoolean implements FutureListener<RspList> {
        private final int index, want;
        private final long startNs;
        private final long[] lat;
        private final Semaphore window;
        private final CountDownLatch ended;
        private final AtomicInteger bad;

        Pending(int index, int want, long startNs, long[] lat, Semaphore window, CountDownLatch ended,
                AtomicInteger bad) {
            this.index = index;
            this.want = want;
            this.startNs = startNs;
            this.lat = lat;
            this.window = window;
            this.ended = ended;
            this.bad = bad;
        }

        @Override
        public void futureDone(Future<RspList> f) {
            if (!compareAndSet(false, true)) {
                return;
            }
            lat[index] = System.nanoTime() - startNs;
            try {
                if (f.get().numReceived() < want) {
                    bad.incrementAndGet();
                }
            } catch (Exception e) {
                bad.incrementAndGet();
            }
            window.release();
            ended.countDown();
        }
    }

    // Makes `calls` calls, `outstanding` at a time, each needing `want` replies. Returns the
    // latencies (ns) with the elapsed time (ns) from the first call to the last completion
    // appended.
    private static long[] calls(RpcDispatcher disp, RequestOptions opts, int want, int outstanding, int calls,
                                long deadline) throws Exception {
        long[] lat = new long[calls + 1];
        long t0 = System.nanoTime();
        if (outstanding <= 1) {
            for (int i = 0; i < calls; i++) {
                if (System.nanoTime() > deadline) {
                    throw new Failed("TIMEOUT after " + i + " of " + calls + " calls");
                }
                long t = System.nanoTime();
                RspList rsp = disp.callRemoteMethods(null, NOOP, opts);
                lat[i] = System.nanoTime() - t;
                if (rsp.numReceived() < want) {
                    throw new Failed("FAILED call " + i + " ended with " + rsp.numReceived() + " of " + want
                                     + " replies");
                }
            }
        } else {
            Semaphore window = new Semaphore(outstanding);
            CountDownLatch ended = new CountDownLatch(calls);
            AtomicInteger bad = new AtomicInteger();
            for (int i = 0; i < calls; i++) {
                if (System.nanoTime() > deadline || !window.tryAcquire(WINDOW_WAIT_MS, TimeUnit.MILLISECONDS)) {
                    throw new Failed("TIMEOUT after " + i + " of " + calls + " calls issued: no call ended in time");
                }
                long t = System.nanoTime();
                disp.callRemoteMethodsWithFuture(null, NOOP, opts)
                    .setListener(new Pending(i, want, t, lat, window, ended, bad));
            }
            if (!ended.await(WINDOW_WAIT_MS, TimeUnit.MILLISECONDS)) {
                throw new Failed("TIMEOUT " + ended.getCount() + " calls did not end");
            }
            if (bad.get() > 0) {
                throw new Failed("FAILED " + bad.get() + " calls ended with fewer than " + want + " replies");
            }
        }
        lat[calls] = System.nanoTime() - t0;
        return lat;
    }

    // The p-th percentile (nearest rank) of sorted nanoseconds, in microseconds.
    private static double pct(long[] sorted, double p) {
        int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))] / 1e3;
    }

    public static void main(String[] args) throws Exception {
        String config = args[0], cluster = args[1];
        int members = Integer.parseInt(args[2]);
        String mode = args[3];
        int outstanding = Math.max(1, Integer.parseInt(args[4]));
        int calls = Math.max(1, Integer.parseInt(args[5]));
        int warmup = Math.max(0, Integer.parseInt(args[6]));
        long deadline = System.nanoTime() + TIMEOUT_NS;
        boolean all = mode.equals("all");
        RequestOptions opts = new RequestOptions(all ? GroupRequest.GET_ALL : GroupRequest.GET_FIRST, CALL_TIMEOUT_MS,
                                                 false, null, Message.DONT_BUNDLE);
        int want = all ? members : 1;

        JgroupsRpc me = new JgroupsRpc(members);
        JChannel ch = new JChannel(config);
        RpcDispatcher disp = new RpcDispatcher(ch, null, me, me);
        ch.connect(cluster);
        System.out.println("JOINED " + ch.getAddress());
        System.out.flush();
        int code = 0;
        boolean caller = false;
        try {
            while (me.view == null || me.view.size() < members) {
                if (System.nanoTime() > deadline) {
                    throw new Failed("TIMEOUT waiting for " + members + " members");
                }
                Thread.sleep(10);
            }
            List<Address> ranked = me.view.getMembers();
            Address first = ranked.get(0);
            caller = first.equals(ch.getAddress());
            if (caller) {
                // Member 0 may see the full view before a joiner can take its multicasts; the
                // joiners say when they can.
                if (!me.ready.await(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                    throw new Failed("TIMEOUT waiting for the other members to be ready");
                }
                calls(disp, opts, want, outstanding, warmup, deadline);
                long[] lat = calls(disp, opts, want, outstanding, calls, deadline);
                double secs = Math.max(1e-9, lat[calls] / 1e9);
                long[] s = Arrays.copyOf(lat, calls);
                Arrays.sort(s);
                System.out.printf(Locale.ROOT,
                    "{\"system\":\"jgroups-2.12\",\"stack\":\"udp.xml\",\"mode\":\"%s\",\"members\":%d,"
                        + "\"outstanding\":%d,\"calls\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
                        + "\"calls_per_sec\":%.0f}%n",
                    all ? "all" : "first", members, outstanding, calls, pct(s, 50), pct(s, 99), pct(s, 99.9),
                    calls / secs);
            } else {
                try {
                    disp.callRemoteMethod(first, READY, new RequestOptions(GroupRequest.GET_ALL, CALL_TIMEOUT_MS,
                                                                           false, null, Message.DONT_BUNDLE));
                } catch (Throwable t) {
                    throw new Failed("FAILED telling member 0 this member is ready: " + t);
                }
                // Serve until member 0 says done or leaves the view.
                while (!me.done.await(50, TimeUnit.MILLISECONDS)) {
                    if (!me.view.containsMember(first)) {
                        break;
                    }
                    if (System.nanoTime() > deadline) {
                        throw new Failed("TIMEOUT waiting for member 0 to finish");
                    }
                }
            }
        } catch (Failed f) {
            System.out.println(f.getMessage());
            code = 3;
        } catch (Exception e) {
            System.out.println("FAILED " + e);
            code = 3;
        } finally {
            if (caller) {
                try {
                    disp.callRemoteMethods(null, DONE, new RequestOptions(GroupRequest.GET_NONE, CALL_TIMEOUT_MS));
                    Thread.sleep(200); // the bundler sends within max_bundle_timeout (30 ms)
                } catch (Exception e) {
                    System.out.println("could not signal done: " + e);
                }
            }
            System.out.flush();
            disp.stop();
            ch.close();
        }
        System.exit(code);
    }
}
