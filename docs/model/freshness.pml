/*
 * The freshness protocol of Tessera's revocation bus (docs/freshness.md), for spin.
 *
 *   identity   commits events 1..N to the outbox (the source of truth)
 *   relay      publishes outbox events to the Redis stream and marks watermarks
 *              (bus/relay.py, bus/redis_streams.py: every write is one script that checks
 *              the epoch and that the stream's top is not below what it builds on)
 *   redis      may crash and come back empty: stream, epoch and watermarks lost
 *   verifier   two of them, each may be killed and restart with nothing:
 *              LOADING -> FOLLOWING <-> FILLING  (verifier/revocation/follower.py,
 *              core/freshness.py)
 *
 * Names follow the code: cursor, fresh_at, epoch, head, at, pending, publish, mark,
 * BusRewound, BusGap, LOADING/FOLLOWING/FILLING. Time is a logical clock that ticks with
 * each commit: only the order of commits and outbox reads matters to the proof.
 *
 * Checked by tests/model/test_freshness_model.py:
 *   fresh_is_proven  (safety run, every reachable state) no verifier ever holds
 *                    fresh_at = t while an event committed before t is missing from its
 *                    state: the assertion in prove(), made wherever fresh_at moves
 *   all_applied      (LTL, weak fairness) once the faults have happened, every
 *                    committed event is eventually applied by both verifiers and stays
 *                    (checked with one killable verifier and one that is not: they do
 *                    not interact, so this covers both fates at a fifth of the cost)
 */

#ifndef N
#define N        2      /* events committed */
#endif
#ifndef CRASHES
#define CRASHES  1      /* Redis crashes (comes back empty): 0 or 1 */
#endif
#ifndef RESTARTS
#define RESTARTS 1      /* kills of each killable verifier */
#endif
#ifndef KILLABLE
#define KILLABLE 2      /* verifiers 0..KILLABLE-1 may be killed */
#endif
#define NEVER    255

mtype = { LOADING, FOLLOWING, FILLING };

byte now;                       /* the logical clock: ticks with each commit */
byte head;                      /* outbox head: events 1..head are committed */
byte commit_at[N + 1];          /* when each event committed (NEVER: not yet) */

/* Redis */
bool on_stream[N + 1];          /* the stream holds event s (entry "s-0") */
byte prev[N + 1];               /* its p field: the seq of the event before it */
byte top;                       /* the stream's last entry (0: empty) */
byte epoch;                     /* S:epoch (0: none) */
byte next_epoch = 1;
byte wm_head; byte wm_at; byte wm_epoch;   /* S:watermarks: the newest entry */
byte wm_id;                     /* its entry id; ids only grow (Redis stream ids) */
bool wm_present;                /* the watermark stream holds it */

byte cursor[2];                 /* each verifier's cursor (the LTL property reads it) */

/* fresh_at := max(fresh_at, t), and the proof obligation: every event committed before
   fresh_at is at or below the cursor (events are applied in order: it is held) */
inline prove(t) {
    if
    :: fresh_at == NEVER || t > fresh_at -> fresh_at = t
    :: else -> skip
    fi;
    k = 1;
    do
    :: k <= N -> assert(!(commit_at[k] < fresh_at) || k <= cursor[v]); k++
    :: k > N -> break
    od
}

inline advance() {   /* the cursor moved: a pending watermark it now covers counts */
    if
    :: has_pending && pending_head <= cursor[v] -> has_pending = false; prove(pending_at)
    :: else -> skip
    fi
}

inline open_epoch() {   /* SET S:epoch NX, then adopt it */
    if
    :: epoch == 0 -> epoch = next_epoch; next_epoch++
    :: else -> skip
    fi;
    epoch_r = epoch
}

proctype identity() {
end: do
    :: d_step { head < N -> now++; head++; commit_at[head] = now }
    od
}

proctype redis() {
    byte s;
    d_step {
        for (s : 1 .. N) { on_stream[s] = false; prev[s] = 0 };
        top = 0; epoch = 0; wm_present = false
    }
}

/* The relay. Publishing: one script per event (the outbox read before it only tells
   that event cursor_r + 1 is committed, which stays true). Marking: read the outbox at
   ``at`` (nothing after cursor_r), then, later, the script: Redis may have crashed and
   events may have committed in between. It waits (blocks) when it has nothing to do. */
proctype relay() {
    byte cursor_r = NEVER;      /* NEVER: re-read the bus position (last_seq) */
    byte epoch_r = 0;           /* the epoch it writes under (0: none yet) */
    byte read_at = NEVER;       /* an outbox read found nothing after cursor_r at this time
                                   (NEVER: no mark in progress) */
    byte marked_head = NEVER; byte marked_at = NEVER; byte s;
end: do
    :: d_step { cursor_r == NEVER -> cursor_r = top; read_at = NEVER }
    :: d_step { cursor_r != NEVER && head > cursor_r ->              /* publish */
            read_at = NEVER;
            if
            :: epoch_r == 0 || epoch != epoch_r -> open_epoch(); cursor_r = NEVER
            :: epoch_r != 0 && epoch == epoch_r && top < cursor_r ->
                cursor_r = NEVER                                    /* BusRewound */
            :: epoch_r != 0 && epoch == epoch_r && top >= cursor_r ->
                s = cursor_r + 1;
                if
                :: s > top -> on_stream[s] = true; prev[s] = cursor_r; top = s
                :: else -> skip                                     /* there already */
                fi;
                cursor_r = s
            fi
        }
    :: d_step { cursor_r != NEVER && head == cursor_r && top < cursor_r ->
            cursor_r = NEVER; read_at = NEVER }                     /* idle: bus went back */
    :: d_step { cursor_r != NEVER && head == cursor_r && read_at == NEVER &&
                (head != marked_head || now != marked_at) ->
            read_at = now }                     /* idle: nothing after cursor_r at "now" */
    :: d_step { cursor_r != NEVER && read_at != NEVER ->           /* the mark script */
            if
            :: epoch_r == 0 || epoch != epoch_r -> open_epoch(); cursor_r = NEVER
            :: epoch_r != 0 && epoch == epoch_r && top < cursor_r -> cursor_r = NEVER
            :: epoch_r != 0 && epoch == epoch_r && top >= cursor_r ->
                wm_head = cursor_r; wm_at = read_at; wm_epoch = epoch; wm_id++;
                wm_present = true; marked_head = cursor_r; marked_at = read_at
            fi;
            read_at = NEVER
        }
    od
}

proctype verifier(byte v) {
    mtype phase = LOADING;
    byte fresh_at = NEVER;      /* NEVER: never proven fresh */
    byte epoch_v = 0;           /* the channel's epoch it follows (0: adopt the next) */
    byte pending_head; byte pending_at; bool has_pending;
    byte seen_id;               /* the last watermark entry read */
    byte kills; byte k; byte s;
end: do
    :: d_step { phase == LOADING ->         /* GET /revocations/snapshot: read at now */
            cursor[v] = head; epoch_v = 0; has_pending = false;
            prove(now); phase = FOLLOWING
        }
    :: d_step { phase == FILLING ->         /* GET /revocations?after=cursor, all pages */
            cursor[v] = head; prove(now); advance(); phase = FOLLOWING }
    :: d_step { phase == FOLLOWING && cursor[v] < top ->   /* XREAD: the next entry */
            s = cursor[v] + 1;
            do
            :: s < top && !on_stream[s] -> s++
            :: else -> break
            od;
            if
            :: on_stream[s] && prev[s] > cursor[v] -> phase = FILLING          /* BusGap */
            :: on_stream[s] && prev[s] <= cursor[v] -> cursor[v] = s; advance()
            :: !on_stream[s] -> skip
            fi
        }
    :: d_step { phase == FOLLOWING && wm_present && wm_id != seen_id -> /* XREAD: a mark */
            seen_id = wm_id;
            if
            :: epoch_v != 0 && wm_epoch != epoch_v -> epoch_v = wm_epoch; phase = FILLING
            :: epoch_v == 0 || wm_epoch == epoch_v ->
                epoch_v = wm_epoch;
                if
                :: wm_head <= cursor[v] -> prove(wm_at)
                :: wm_head > cursor[v] && top <= cursor[v] -> phase = FILLING  /* BusGap */
                :: wm_head > cursor[v] && top > cursor[v] ->
                    has_pending = true; pending_head = wm_head; pending_at = wm_at
                fi
            fi
        }
#ifdef TRUST_SILENCE
    /* The bug of issue 10, for the checker to find: an empty read counted as a heartbeat
       (tests/model checks that spin reports this one). */
    :: d_step { phase == FOLLOWING && cursor[v] >= top -> prove(now); skip }
#endif
    :: d_step { kills < RESTARTS && v < KILLABLE ->  /* kill -9, restart: nothing kept */
            kills++; cursor[v] = 0; fresh_at = NEVER; epoch_v = 0; has_pending = false;
            seen_id = 0; phase = LOADING
        }
    od
}

init {
    atomic {
        byte k;
        for (k : 1 .. N) { commit_at[k] = NEVER };
        run identity(); run relay(); run verifier(0); run verifier(1);
        if
        :: CRASHES > 0 -> run redis()
        :: else -> skip
        fi
    }
}

ltl all_applied { <> [] (cursor[0] == N && cursor[1] == N) }
