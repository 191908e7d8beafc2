// storm.go: the Go peer of bench/storm. The same connections and driver patterns, served the
// way a Go program serves them: one goroutine per connection blocked in Read, the runtime's one
// shared edge-triggered netpoller (seed 002) behind them, GOMAXPROCS = T.
//
// Patterns: burst (the driver writes 1 byte to all N connections, then waits until all N were
// read) and trickle (1 byte to one random connection, wait until it was read). stay-ready is
// not expressible here: Read drains the socket, and the netpoller is edge-triggered, so an
// undrained socket is reported once and never again; it exits with status 3 (skipped).
//
// Output: one line per run, the CSV columns of bench/storm (--csv), with what Go cannot report
// left as NA: the poll-call figures (epoll_wait is inside the runtime), and the worker-only CPU
// and context switches. The driver is a goroutine on the same Ps as the readers (no thread of its
// own, unlike bench/storm's driver), so only the process totals are given
// (total_cpu_s_per_Mevents, total_vcsw_per_1k_events: driver included, like bench/storm's
// columns of the same names). Build and run with only the standard library:
//
//	go build -o storm_go bench/peers/go/storm.go
//	./storm_go -pattern burst -connections 1024 -threads 1,2,4 -duration 1
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	connections   = flag.Int("connections", 1024, "connection pairs N (2N file descriptors)")
	transport     = flag.String("transport", "tcp", "tcp (127.0.0.1) or unix (socketpair)")
	pattern       = flag.String("pattern", "burst", "burst or trickle (stay-ready is skipped)")
	threads       = flag.String("threads", "1,2,4", "comma-separated GOMAXPROCS values")
	duration      = flag.Float64("duration", 1.0, "seconds per run")
	warmup        = flag.Float64("warmup", 0, "seconds of unmeasured rounds before each run's measured part")
	maxIterations = flag.Int64("max_iterations", 100000000, "per-run bound: burst rounds, trickle events")
	repeats       = flag.Int("repeats", 1, "runs per thread count")
	csv           = flag.Bool("csv", false, "print CSV lines on stdout (text goes to stderr)")
	csvHeader     = flag.Bool("csv_header", false, "with -csv: print the header line first")
)

// A round that makes no progress for this long means events were lost.
const stallLimit = 5 * time.Second

// Shared by the driver and the reader goroutines: readers add the bytes they read to consumed;
// the reader whose addition reaches target (set by the driver before it writes) signals done.
var (
	consumed atomic.Uint64
	target   atomic.Uint64
	done     = make(chan struct{}, 1)
)

func reader(c net.Conn) {
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		v := consumed.Add(uint64(n))
		t := target.Load()
		if v >= t && v-uint64(n) < t {
			select {
			case done <- struct{}{}:
			default:
			}
		}
	}
}

func openPairs(n int) (drivers, workers []net.Conn, err error) {
	if *transport == "unix" {
		for i := 0; i < n; i++ {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				return nil, nil, fmt.Errorf("socketpair #%d: %w", i, err)
			}
			for k, fd := range fds {
				f := os.NewFile(uintptr(fd), "socketpair")
				c, err := net.FileConn(f) // dups the fd
				f.Close()
				if err != nil {
					return nil, nil, fmt.Errorf("socketpair #%d: %w", i, err)
				}
				if k == 0 {
					drivers = append(drivers, c)
				} else {
					workers = append(workers, c)
				}
			}
		}
		return drivers, workers, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String()) // TCP_NODELAY is Go's default
		if err != nil {
			return nil, nil, fmt.Errorf("dial #%d: %w", i, err)
		}
		s, err := ln.Accept()
		if err != nil {
			return nil, nil, fmt.Errorf("accept #%d: %w", i, err)
		}
		drivers = append(drivers, c)
		workers = append(workers, s)
	}
	return drivers, workers, nil
}

func usage() (cpu float64, nvcsw int64) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6, ru.Nvcsw
}

// waitConsumed blocks until consumed >= want; false after stallLimit without progress.
func waitConsumed(want uint64, tick *time.Ticker) bool {
	last, lastChange := consumed.Load(), time.Now()
	for {
		c := consumed.Load()
		if c >= want {
			return true
		}
		if c != last {
			last, lastChange = c, time.Now()
		} else if time.Since(lastChange) > stallLimit {
			return false
		}
		select {
		case <-done:
		case <-tick.C:
		}
	}
}

// driveRounds makes rounds for `seconds` (or until -max_iterations rounds), each waited for
// until consumed; base is the consumed count the rounds start from, and is left where they end.
func driveRounds(drivers []net.Conn, rng *rand.Rand, tick *time.Ticker, base *uint64,
	seconds float64) (rounds uint64, stop string, err error) {
	n := len(drivers)
	one := []byte{'x'}
	start := time.Now()
	stop = "duration"
	for time.Since(start).Seconds() < seconds {
		if rounds == uint64(*maxIterations) {
			stop = "iterations"
			break
		}
		if *pattern == "burst" {
			target.Store(*base + uint64(n))
			for _, c := range drivers {
				if _, err := c.Write(one); err != nil {
					return rounds, stop, err
				}
			}
			*base += uint64(n)
		} else {
			target.Store(*base + 1)
			if _, err := drivers[rng.Intn(n)].Write(one); err != nil {
				return rounds, stop, err
			}
			*base++
		}
		if !waitConsumed(*base, tick) {
			return rounds, stop, fmt.Errorf("round %d: events were lost (%d of %d consumed)", rounds, consumed.Load(), *base)
		}
		rounds++
	}
	return rounds, stop, nil
}

func runOnce(drivers []net.Conn, t, repeat int) error {
	runtime.GOMAXPROCS(t)
	runtime.GC() // not during the run
	n := len(drivers)
	rng := rand.New(rand.NewSource(12345))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	base := consumed.Load()
	if *warmup > 0 {
		if _, _, err := driveRounds(drivers, rng, tick, &base, *warmup); err != nil {
			return err
		}
	}
	base0 := base
	cpu0, vcsw0 := usage()
	start := time.Now()
	rounds, stop, err := driveRounds(drivers, rng, tick, &base, *duration)
	if err != nil {
		return err
	}
	wall := time.Since(start).Seconds()
	cpu1, vcsw1 := usage()
	events := float64(base - base0)
	cpuPerM, vcswPer1k := 0.0, 0.0
	if events > 0 {
		cpuPerM = (cpu1 - cpu0) * 1e6 / events
		vcswPer1k = float64(vcsw1-vcsw0) * 1000 / events
	}
	wallOK := stop != "duration" || (wall >= 0.8**duration && wall <= 1.2**duration)
	note := ""
	if stop == "iterations" {
		note = " (stopped by -max_iterations)"
	}
	if !wallOK {
		note += "  WARNING: wall time differs from -duration by more than 20%"
	}
	text := fmt.Sprintf("%-9s %-10s N=%-5d T=%-3d run %d: %9.0f ev/s %7.3f cpu_s/Mev (process, driver included) %7.1f vcsw/1kev | wall %.2f s%s",
		"go", *pattern, n, t, repeat, events/wall, cpuPerM, vcswPer1k, wall, note)
	if !*csv {
		fmt.Println(text)
		return nil
	}
	fmt.Fprintln(os.Stderr, text)
	ok := 0
	if wallOK {
		ok = 1
	}
	fmt.Printf("go,goroutines,%s,%s,%d,%d,128,edge,%d,%.3f,%.4f,%s,%d,%d,%.0f,%.1f,NA,NA,NA,NA,NA,NA,NA,NA,NA,NA,%.4f,%.3f\n",
		*transport, *pattern, n, t, repeat, *duration, wall, stop, ok, rounds, events, events/wall,
		cpuPerM, vcswPer1k)
	return nil
}

func main() {
	flag.Parse()
	if *pattern == "stay-ready" || *pattern == "stay_ready" {
		fmt.Fprintln(os.Stderr, "storm_go: skipped: stay-ready cannot be expressed with one goroutine per connection (Read drains; Go's netpoller is edge-triggered)")
		os.Exit(3)
	}
	if *pattern != "burst" && *pattern != "trickle" {
		fmt.Fprintln(os.Stderr, "storm_go: -pattern must be burst or trickle")
		os.Exit(2)
	}
	if *transport != "tcp" && *transport != "unix" {
		fmt.Fprintln(os.Stderr, "storm_go: -transport must be tcp or unix")
		os.Exit(2)
	}
	var ts []int
	for _, s := range strings.Split(*threads, ",") {
		t, err := strconv.Atoi(s)
		if err != nil || t < 1 {
			fmt.Fprintf(os.Stderr, "storm_go: bad -threads entry %q\n", s)
			os.Exit(2)
		}
		ts = append(ts, t)
	}
	// Go (1.19+) raises the soft open-file limit to the hard limit at start-up.
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if need := uint64(2**connections + 64); lim.Cur < need {
		fmt.Fprintf(os.Stderr, "storm_go: skipped: N=%d %s connections: needs about %d file descriptors but the limit is %d\n",
			*connections, *transport, need, lim.Cur)
		os.Exit(3)
	}
	drivers, workers, err := openPairs(*connections)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm_go:", err)
		os.Exit(1)
	}
	for _, c := range workers {
		go reader(c)
	}
	info := os.Stdout
	if *csv {
		info = os.Stderr
	}
	fmt.Fprintf(info, "storm_go: %s, %d CPUs; %s pattern, N=%d %s connections, GOMAXPROCS %s, %.2f s x %d runs after %.2f s of warm-up each\n",
		runtime.Version(), runtime.NumCPU(), *pattern, *connections, *transport, *threads, *duration, *repeats, *warmup)
	if *csv && *csvHeader {
		fmt.Println("impl,design,transport,pattern,connections,threads,max_events,arm,repeat,duration_s,wall_s," +
			"stop,wall_ok,rounds,events,events_per_s,cpu_s,cpu_s_per_Mevents,poll_ns_per_event," +
			"poll_cpu_ns_per_event,poll_cpu_share,events_per_poll,vcsw_per_1k_events,spurious_per_event," +
			"stale_events,idle_timeouts,total_cpu_s_per_Mevents,total_vcsw_per_1k_events")
	}
	for r := 1; r <= *repeats; r++ {
		for _, t := range ts {
			if err := runOnce(drivers, t, r); err != nil {
				fmt.Fprintf(os.Stderr, "storm_go: GOMAXPROCS=%d run %d failed: %v\n", t, r, err)
				os.Exit(1)
			}
		}
	}
}
