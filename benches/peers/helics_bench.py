#!/usr/bin/env python3
"""HELICS 3.6 peers of fedtwin-bench's scenarios, printing the same lines.

    benches/peers/run.sh [FILTER] [--steps N] [--quick] [--cores inproc,zmq,tcp]

run.sh makes a virtual environment with helics==3.6.1 under target/ and runs this script in it.
FILTER keeps the scenarios whose `scenario/transport/N` label contains it (`lockstep`,
`helics-zmq`, `pingpong/helics-inproc/2`). Columns, as fedtwin-bench prints them:

    scenario transport N steps seconds grants_per_s us_per_step median_us p90_us

`steps` is the mean number of measured grants per federate (`phold`: events handled, all
federates together), `seconds` the wall time from the first federate's measured start to the
last one's end, `grants_per_s` all federates' grants (`phold`: events) per second,
`us_per_step` is `seconds / steps` (`pingpong`: the median step), `median_us` and `p90_us` are
those of federate f0's steps (`phold`: its time requests).

Scenarios (the same shapes as fedtwin-bench's; see benches/src/bin/fedtwin-bench.rs):

* lockstep (N = 2, 8, 32): a ring of value federates with period 1. Federate i publishes one
  double per step on `node<i>` and subscribes to `node<i+1>`, then requests t + 1.
* pingpong (N = 2): message federates with endpoints `ping` and `pong` and period 1. f0 sends
  message k at t and requests t + 1; f1 receives it with that grant and answers in its next
  step; f0 receives the answer with the grant that ends its step k + 1. One message each way per step; `us_per_step` is f0's median step.
* phold (N = 8): 4 events in flight per federate; handling an event at its time sends a new
  one to a uniformly random federate (the sender included, whose events stay local) stamped
  now + lookahead + exponential (mean 1 ms). The lookahead (1 ms) is HELICS's output delay,
  which holds the same promise (tested: a message stamped earlier is moved to now + delay).
  Each federate requests the time of its next local event (HELICS grants earlier when a
  message comes first: fedtwin's NER) until the simulated end, sized for about `steps` events
  per federate.

Transports: `helics-inproc` puts every federate on one in-process core (the faster of the two
inproc layouts tried: a core per federate behind an inproc broker was up to 2x slower), the peer
of fedtwin's embedded RTI. `helics-zmq` and `helics-tcp` give each federate a core of its own
talking to a `helics_broker` process over loopback, the peer of fedtwin's federates each with a
QUIC connection to the daemon process. Federates are threads of one process, as fedtwin-bench's
are: every helics call releases the GIL (cffi ABI mode), and Python adds a few microseconds per
step, small against what HELICS takes.

Each scenario runs in a child process of this script, so that a hung one can be ended with its
broker and tried again (up to ATTEMPTS times; failed attempts are reported on stderr): with
several zmq or tcp cores starting at once, HELICS 3.6.1 now and then never leaves
helicsFederateEnterExecutingMode.
"""

import argparse
import faulthandler
import heapq
import math
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from statistics import median

import helics as h

# The same budgets as fedtwin-bench.
WARM_UP = 1000
DEFAULT_STEPS = 20000
TIME_LIMIT = 5.0
QUICK_WARM_UP = 100
QUICK_STEPS = 5000
QUICK_TIME_LIMIT = 0.8
# A scenario still running after this long is taken as hung and fails the run.
WATCHDOG = 30.0
# How long the federates of a scenario may take to all enter executing mode.
SETUP_LIMIT = 10.0
# Tries of a scenario that fails or hangs before it is reported as failed.
ATTEMPTS = 3
PHOLD_POPULATION = 4
PHOLD_MEAN_DELAY = 1e-3
# The ring step and PHOLD's lookahead, in seconds (fedtwin's RING_STEP; the lockstep ring and
# ping-pong use a period of 1 as the brief asks: only the count of steps matters there).
PHOLD_LOOKAHEAD = 1e-3

SCENARIOS = [("lockstep", 2), ("lockstep", 8), ("lockstep", 32), ("pingpong", 2), ("phold", 8)]


class Budget:
    def __init__(self, quick, steps):
        self.warm_up = QUICK_WARM_UP if quick else WARM_UP
        self.steps = steps or (QUICK_STEPS if quick else DEFAULT_STEPS)
        self.limit = QUICK_TIME_LIMIT if quick else TIME_LIMIT


class Run:
    """What one federate did in its measured part."""

    def __init__(self, start, end, grants, events, samples):
        self.start = start
        self.end = end
        self.grants = grants
        self.events = events
        self.samples = samples


class Federation:
    """The broker (in this process for inproc, a helics_broker process otherwise) and how a
    federate reaches it."""

    counter = 0

    def __init__(self, core, federates):
        Federation.counter += 1
        self.core = core
        self.federates = federates
        self.broker = None
        self.process = None
        self.shared_core = None
        self.lock = threading.Lock()
        self.executing = 0
        self.all_executing = threading.Event()
        tag = self.tag = f"{os.getpid()}x{Federation.counter}"
        if core == "inproc":
            # One core for all federates; it starts its own broker.
            self.core_name = f"core{tag}"
            self.shared_core = h.helicsCreateCore(
                "inproc", self.core_name, f"--autobroker -f {federates} --loglevel=no_print"
            )
        else:
            port = free_port()
            # The binary itself: the `helics_broker` on PATH is a Python wrapper around it,
            # which would not pass a kill on.
            broker = os.path.join(os.path.dirname(h.__file__), "install", "bin", "helics_broker")
            self.process = subprocess.Popen(
                [
                    broker,
                    f"--coretype={core}",
                    f"-f{federates}",
                    "--local",
                    f"--port={port}",
                    "--loglevel=no_print",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # The broker dies with this process, however it ends.
                preexec_fn=die_with_parent,
            )
            if core == "tcp":
                wait_listening(port, self.process)
            else:
                # A stray connection upsets a zmq broker: give it a moment instead.
                time.sleep(0.3)
            self.core_init = (
                f"--federates=1 --local --broker_address=127.0.0.1 --brokerport={port} "
                "--loglevel=no_print"
            )
            if core == "tcp":
                # Ports from the kernel: fewer collisions between cores starting together.
                self.core_init += " --useosport"

    def entered(self):
        """Called by each federate once in executing mode."""
        with self.lock:
            self.executing += 1
            if self.executing == self.federates:
                self.all_executing.set()

    def info(self, index):
        info = h.helicsCreateFederateInfo()
        h.helicsFederateInfoSetCoreTypeFromString(info, self.core)
        if self.shared_core is not None:
            h.helicsFederateInfoSetCoreName(info, self.core_name)
        else:
            # A core of its own: without a name of its own, a federate starting while another's
            # core is still connecting joins that core, which then never enters executing mode.
            h.helicsFederateInfoSetCoreName(info, f"f{index}core{self.tag}")
            h.helicsFederateInfoSetCoreInitString(info, self.core_init)
        return info

    def close(self):
        if self.shared_core is not None:
            h.helicsCoreWaitForDisconnect(self.shared_core, 5000)
            h.helicsCoreFree(self.shared_core)
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


def die_with_parent():
    """In the broker's process before exec: ask Linux for SIGKILL when this process dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watchdog's kill still applies


def wait_listening(port, process):
    """Waits until the broker accepts connections, so that no core starts retrying."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"helics_broker ended with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.01)
    process.kill()
    raise RuntimeError("helics_broker did not listen within 10 s")


def free_port():
    # zmq brokers also use the next port up: find a free port with a free neighbour.
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 1 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    pass
    raise RuntimeError("no free pair of ports")


def finish(federate):
    h.helicsFederateDisconnect(federate)
    h.helicsFederateFree(federate)


def measuring(step, warm_up, budget, start):
    """Whether step `step` is measured, and whether the loop is over."""
    if step < warm_up:
        return False, False
    over = step - warm_up >= budget.steps or time.perf_counter() - start >= budget.limit
    return True, over


def lockstep_member(federation, index, federates, budget):
    info = federation.info(index)
    h.helicsFederateInfoSetTimeProperty(info, h.HELICS_PROPERTY_TIME_PERIOD, 1.0)
    federate = h.helicsCreateValueFederate(f"f{index}", info)
    h.helicsFederateInfoFree(info)
    publication = h.helicsFederateRegisterGlobalPublication(
        federate, f"node{index}", h.HELICS_DATA_TYPE_DOUBLE, ""
    )
    subscription = h.helicsFederateRegisterSubscription(
        federate, f"node{(index + 1) % federates}", ""
    )
    h.helicsFederateEnterExecutingMode(federate)
    federation.entered()

    warm_up = budget.warm_up // 10
    now = 0.0
    start = time.perf_counter()
    grants = received = 0
    samples = []
    step = 0
    while True:
        if step == warm_up:
            start = time.perf_counter()
        measured, over = measuring(step, warm_up, budget, start)
        if over:
            break
        began = time.perf_counter()
        h.helicsPublicationPublishDouble(publication, float(step))
        now = h.helicsFederateRequestTime(federate, now + 1.0)
        took = time.perf_counter() - began
        updated = h.helicsInputIsUpdated(subscription)
        if updated:
            h.helicsInputGetDouble(subscription)
        if measured:
            grants += 1
            received += 1 if updated else 0
            if index == 0:
                samples.append(took)
        step += 1
    end = time.perf_counter()
    finish(federate)
    if grants > 2 and received == 0:
        raise RuntimeError(f"f{index} received nothing from its neighbour")
    return Run(start, end, grants, received, samples)


def pingpong_member(federation, index, federates, budget):
    name, other = ("ping", "pong") if index == 0 else ("pong", "ping")
    info = federation.info(index)
    h.helicsFederateInfoSetTimeProperty(info, h.HELICS_PROPERTY_TIME_PERIOD, 1.0)
    federate = h.helicsCreateMessageFederate(f"f{index}", info)
    h.helicsFederateInfoFree(info)
    endpoint = h.helicsFederateRegisterGlobalEndpoint(federate, name, "")
    h.helicsFederateEnterExecutingMode(federate)
    federation.entered()

    warm_up = budget.warm_up // 10
    now = 0.0
    start = time.perf_counter()
    grants = received = 0
    samples = []
    to_answer = None
    step = 0
    while True:
        if step == warm_up:
            start = time.perf_counter()
        measured, over = measuring(step, warm_up, budget, start)
        if over:
            break
        began = time.perf_counter()
        count = step if index == 0 else to_answer
        to_answer = None
        if count is not None:
            # Sent at t: HELICS delivers it with the partner's grant at t + 1, as fedtwin
            # delivers a message stamped t + 1. (Stamped t + 1 explicitly, it would arrive one
            # step later: HELICS may grant t + 1 to the partner before this federate has
            # requested t + 1.)
            h.helicsEndpointSendBytesTo(endpoint, struct.pack("<Q", count), other)
        now = h.helicsFederateRequestTime(federate, now + 1.0)
        took = time.perf_counter() - began
        got = 0
        while h.helicsEndpointHasMessage(endpoint):
            message = h.helicsEndpointGetMessage(endpoint)
            (count,) = struct.unpack("<Q", h.helicsMessageGetBytes(message))
            expected = step - 1 if index == 0 else step
            if count != expected:
                raise RuntimeError(f"f{index} got {count} at step {step}, not {expected}")
            to_answer = count
            got += 1
        if measured:
            grants += 1
            received += got
            if index == 0:
                samples.append(took)
        step += 1
    end = time.perf_counter()
    finish(federate)
    if grants > 2 and received == 0:
        raise RuntimeError(f"f{index} received nothing from its partner")
    return Run(start, end, grants, received, samples)


def phold_member(federation, index, federates, budget, end_time):
    info = federation.info(index)
    h.helicsFederateInfoSetTimeProperty(info, h.HELICS_PROPERTY_TIME_OUTPUT_DELAY, PHOLD_LOOKAHEAD)
    federate = h.helicsCreateMessageFederate(f"f{index}", info)
    h.helicsFederateInfoFree(info)
    endpoint = h.helicsFederateRegisterGlobalEndpoint(federate, f"ev{index}", "")
    destinations = [f"ev{i}" for i in range(federates)]
    rng = random.Random(index)

    def delay():
        return PHOLD_LOOKAHEAD + rng.expovariate(1.0 / PHOLD_MEAN_DELAY)

    local = [delay() for _ in range(PHOLD_POPULATION)]
    heapq.heapify(local)
    payload = struct.pack("<I", index)
    h.helicsFederateEnterExecutingMode(federate)
    federation.entered()

    start = time.perf_counter()
    now = 0.0
    grants = events = 0
    samples = []
    while now < end_time and time.perf_counter() - start < budget.limit:
        target = min(local[0], end_time) if local else end_time
        began = time.perf_counter()
        now = h.helicsFederateRequestTime(federate, target)
        if index == 0:
            samples.append(time.perf_counter() - began)
        grants += 1
        due = 0
        while h.helicsEndpointHasMessage(endpoint):
            h.helicsEndpointGetMessage(endpoint)
            due += 1
        while local and local[0] <= now:
            heapq.heappop(local)
            due += 1
        events += due
        for _ in range(due):
            to = rng.randrange(federates)
            at = now + delay()
            if to == index:
                heapq.heappush(local, at)
            else:
                h.helicsEndpointSendBytesToAt(endpoint, payload, destinations[to], at)
    end = time.perf_counter()
    finish(federate)
    return Run(start, end, grants, events, samples)


def run_scenario(name, core, federates, budget):
    federation = Federation(core, federates)
    try:
        if name == "phold":
            mean = PHOLD_LOOKAHEAD + PHOLD_MEAN_DELAY
            end_time = budget.steps * federates * mean / (PHOLD_POPULATION * federates)

            def member(i):
                return phold_member(federation, i, federates, budget, end_time)

        else:
            body = lockstep_member if name == "lockstep" else pingpong_member

            def member(i):
                return body(federation, i, federates, budget)

        runs = [None] * federates
        errors = []

        def target(i):
            try:
                runs[i] = member(i)
            except Exception as error:  # reported below, after every thread has ended
                errors.append(f"f{i}: {error}")

        threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(federates)]
        for thread in threads:
            thread.start()
        if not federation.all_executing.wait(SETUP_LIMIT):
            federation.kill()
            why = f" ({'; '.join(errors)})" if errors else ""
            raise TimeoutError(f"not all federates executing after {SETUP_LIMIT:.0f} s{why}")
        deadline = time.monotonic() + WATCHDOG
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            federation.kill()
            raise TimeoutError(f"not finished after {WATCHDOG:.0f} s")
        if errors:
            federation.kill()
            raise RuntimeError("; ".join(errors))
        federation.close()
    except BaseException:
        federation.kill()
        raise
    return combine(name, runs, federates)


def combine(name, runs, federates):
    start = min(run.start for run in runs)
    end = max(run.end for run in runs)
    seconds = end - start
    samples = sorted(s for run in runs for s in run.samples)
    if name == "phold":
        steps = sum(run.events for run in runs)
        grants = steps
    else:
        grants = sum(run.grants for run in runs)
        steps = round(grants / federates)
    if steps == 0 or not samples:
        raise RuntimeError("no measured step")
    per_step = median(samples) * 1e6 if name == "pingpong" else seconds * 1e6 / steps
    return (steps, seconds, grants / seconds, per_step, percentile(samples, 50), percentile(samples, 90))


def percentile(sorted_samples, p):
    """Nearest rank, in microseconds, as fedtwin-bench computes it."""
    rank = max(1, math.ceil(p * len(sorted_samples) / 100))
    return sorted_samples[rank - 1] * 1e6


def main():
    parser = argparse.ArgumentParser(description="HELICS peers of fedtwin-bench's scenarios")
    parser.add_argument("filter", nargs="?", default="")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cores", default="inproc,zmq,tcp")
    # Internal: run the one scenario `name/core/N` in this process and print its line.
    parser.add_argument("--one", help=argparse.SUPPRESS)
    options = parser.parse_args()
    budget = Budget(options.quick, options.steps)
    if options.one:
        return run_one(options.one, budget)

    cores = [core.strip() for core in options.cores.split(",") if core.strip()]
    for core in cores:
        if not h.helicsIsCoreTypeAvailable(core):
            parser.error(f"this HELICS has no `{core}` core")
    selected = [
        f"{name}/{core}/{federates}"
        for core in cores
        for name, federates in SCENARIOS
        if options.filter in f"{name}/helics-{core}/{federates}"
    ]
    if not selected:
        parser.error(f"no scenario matches `{options.filter}`")

    # Each scenario runs in a child process, so that a hung one can be ended cleanly (with its
    # broker) and tried again: HELICS's tcp core now and then never leaves entering executing
    # mode when several cores start at once.
    print("scenario transport N steps seconds grants_per_s us_per_step median_us p90_us", flush=True)
    child = [sys.executable, os.path.abspath(__file__)]
    if options.quick:
        child.append("--quick")
    if options.steps:
        child += ["--steps", str(options.steps)]
    failed = False
    for label in selected:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                done = subprocess.run(
                    child + ["--one", label],
                    stdout=subprocess.PIPE,
                    text=True,
                    timeout=SETUP_LIMIT + WATCHDOG + 20,
                )
                # HELICS prints some diagnostics on standard output: keep the result line only.
                prefix = label.split("/")[0] + " helics-"
                lines = [l for l in done.stdout.splitlines() if l.startswith(prefix)]
                line = lines[-1] if lines else ""
                ok = done.returncode == 0 and line
            except subprocess.TimeoutExpired:
                line, ok = "", False
            if ok:
                print(line, flush=True)
                break
            retry = "; trying again" if attempt < ATTEMPTS else ""
            print(f"error: {label}: attempt {attempt} failed{retry}", file=sys.stderr, flush=True)
        else:
            failed = True
    return 1 if failed else 0


def run_one(label, budget):
    name, core, federates = label.split("/")
    federates = int(federates)
    # Should the scenario's own watchdog get stuck, say where and end the process.
    faulthandler.dump_traceback_later(SETUP_LIMIT + WATCHDOG + 10, exit=True)
    try:
        steps, seconds, rate, per_step, p50, p90 = run_scenario(name, core, federates, budget)
    except Exception as error:
        print(f"error: {name}/helics-{core}/{federates}: {error}", file=sys.stderr, flush=True)
        # Hung federate threads cannot be stopped; leave now (the broker is already killed).
        os._exit(1)
    print(
        f"{name} helics-{core} {federates} {steps} {seconds:.2f} {rate:.0f} "
        f"{per_step:.1f} {p50:.1f} {p90:.1f}",
        flush=True,
    )
    # Leave without waiting for HELICS's threads to wind down.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
