// One member of a JGroups 2.12 group, for the same workload as `thoth-perf`: every member
// receives every message (its own included), the first SENDERS members by rank each
// multicast COUNT messages of SIZE bytes, after a warm-up round (WARMUP x COUNT messages,
// so that the JIT is warm). Run by `jgroups-perf.sh`, which starts MEMBERS of these.
//
// A data message: tag (0 warm-up, 1 measured), the sender's rank (int), its sequence number
// in the round (long), then filler up to SIZE. After the warm-up round every member
// multicasts READY (tag 3); the measured round starts at each member when it has every
// READY (the senders begin then), and, as `thoth-perf` measures, a member's rate is the
// measured messages over the time from that start to its last arrival. FIFO order is
// checked per sender. With every measured message in, a member multicasts DONE (tag 2,
// rank, its rate as a double, FIFO violations); when it has every member's DONE it prints
//   RESULT members=M senders=S size=B count=N msgs_per_sec=X fifo_violations=V
// (X: the slowest receiver's rate) and leaves. Every wait is bounded; exit 3 on a timeout.
//
// Usage: java JgroupsPerf CONFIG CLUSTER MEMBERS SENDERS SIZE COUNT WARMUP

import org.jgroups.Address;
import org.jgroups.JChannel;
import org.jgroups.Message;
import org.jgroups.ReceiverAdapter;
import org.jgroups.View;

import java.nio.ByteBuffer;
import java.util.List;

public final class JgroupsPerf extends ReceiverAdapter {
    private static final byte WARM = 0, MEASURED = 1, DONE = 2, READY = 3;
    private static final int HEADER = 1 + 4 + 8;
    private static final long TIMEOUT_NS = 240_000_000_000L;

    private final int senders;
    private final long[] nextSeq; // per sender rank and round: the next sequence number expected
    private long warmGot, measuredGot, lastNs, fifoViolations;
    private int readyGot, donesGot;
    private double slowest = Double.MAX_VALUE;
    private long violationsAll;
    private volatile View view;

    private JgroupsPerf(int senders) {
        this.senders = senders;
        this.nextSeq = new long[2 * senders];
    }

    @Override
    public void viewAccepted(View v) {
        view = v;
    }

    @Override
    public void receive(Message msg) {
        ByteBuffer b = ByteBuffer.wrap(msg.getRawBuffer(), msg.getOffset(), msg.getLength());
        byte tag = b.get();
        int rank = b.getInt();
        synchronized (this) {
            if (tag == READY) {
                readyGot++;
                notifyAll();
                return;
            }
            if (tag == DONE) {
                double rate = b.getDouble();
                violationsAll += b.getLong();
                slowest = Math.min(slowest, rate);
                donesGot++;
                notifyAll();
                return;
            }
            if (rank < 0 || rank >= senders || (tag != WARM && tag != MEASURED)) {
                return;
            }
            long seq = b.getLong();
            int slot = 2 * rank + tag;
            if (seq != nextSeq[slot]) {
                fifoViolations++;
            }
            nextSeq[slot] = seq + 1;
            if (tag == WARM) {
                warmGot++;
            } else {
                lastNs = System.nanoTime();
                measuredGot++;
            }
            notifyAll();
        }
    }

    // Waits until `done` holds; false on the deadline.
    private synchronized boolean await(java.util.function.BooleanSupplier done, long deadline) throws InterruptedException {
        while (!done.getAsBoolean()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            wait(Math.max(1, left / 1_000_000));
        }
        return true;
    }

    private static void send(JChannel ch, byte tag, int rank, long seq, int size) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(size);
        b.put(tag).putInt(rank).putLong(seq);
        ch.send(new Message(null, null, b.array()));
    }

    public static void main(String[] args) throws Exception {
        String config = args[0], cluster = args[1];
        int members = Integer.parseInt(args[2]), senders = Integer.parseInt(args[3]);
        int size = Math.max(HEADER + 8, Integer.parseInt(args[4]));
        int count = Integer.parseInt(args[5]);
        int warm = (int) Math.ceil(count * Double.parseDouble(args[6]));
        long deadline = System.nanoTime() + TIMEOUT_NS;

        JgroupsPerf me = new JgroupsPerf(senders);
        JChannel ch = new JChannel(config);
        ch.setReceiver(me);
        ch.connect(cluster);
        System.out.println("JOINED " + ch.getAddress());
        System.out.flush();
        int code = 0;
        try {
            while (me.view == null || me.view.size() < members) {
                if (System.nanoTime() > deadline) {
                    System.out.println("TIMEOUT waiting for " + members + " members");
                    System.exit(3);
                }
                Thread.sleep(10);
            }
            List<Address> ranked = me.view.getMembers();
            int rank = ranked.indexOf(ch.getAddress());
            long expectedWarm = (long) warm * senders, expected = (long) count * senders;
            if (rank < senders) {
                for (long s = 0; s < warm; s++) {
                    send(ch, WARM, rank, s, size);
                }
            }
            boolean warmed = me.await(() -> me.warmGot >= expectedWarm, deadline);
            if (warmed) {
                send(ch, READY, rank, 0, HEADER);
            }
            if (!warmed || !me.await(() -> me.readyGot >= members, deadline)) {
                System.out.println("TIMEOUT in the warm-up round: " + me.warmGot + " of " + expectedWarm);
                code = 3;
            } else {
                long startNs = System.nanoTime();
                if (rank < senders) {
                    for (long s = 0; s < count; s++) {
                        send(ch, MEASURED, rank, s, size);
                    }
                }
                if (!me.await(() -> me.measuredGot >= expected, deadline)) {
                    System.out.println("TIMEOUT in the measured round: " + me.measuredGot + " of " + expected);
                    code = 3;
                } else {
                    double secs = Math.max(1e-9, (me.lastNs - startNs) / 1e9);
                    double rate = expected / secs;
                    ByteBuffer b = ByteBuffer.allocate(1 + 4 + 8 + 8);
                    long fifo;
                    synchronized (me) {
                        fifo = me.fifoViolations;
                    }
                    b.put(DONE).putInt(rank).putDouble(rate).putLong(fifo);
                    ch.send(new Message(null, null, b.array()));
                    if (!me.await(() -> me.donesGot >= members, deadline)) {
                        System.out.println("TIMEOUT waiting for the other members' results");
                        code = 3;
                    } else {
                        synchronized (me) {
                            System.out.printf(
                                "RESULT members=%d senders=%d size=%d count=%d msgs_per_sec=%.1f fifo_violations=%d%n",
                                members, senders, size, count, me.slowest, me.violationsAll);
                        }
                    }
                }
            }
        } finally {
            System.out.flush();
            ch.close();
        }
        System.exit(code);
    }
}
