// Command statsdbench measures what steward's StatsD server takes in: it
// runs the real steward binary with [metrics.statsd] on, sends it StatsD
// lines over UDP at a series of rates (one line per datagram, as most
// clients send, and batches of lines per datagram), and prints for each
// rate the lines sent and counted by steward (steward_appmetrics_received_total
// on its /metrics), the datagrams the kernel dropped on the socket
// (/proc/net/udp), and steward's CPU (utime+stime of /proc/PID/stat) as
// cores and as CPU time per 10k metrics per second. The highest rate with
// no loss at no more than one core is the figure the README reports.
//
// Usage: statsdbench -steward ./steward [-duration 5s] [-rates 10000,50000,...] [-batch 1,20]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stewardhq/steward/internal/proc"
)

func main() {
	steward := flag.String("steward", "", "steward binary")
	duration := flag.Duration("duration", 5*time.Second, "time sent at each rate")
	rates := flag.String("rates", "10000,25000,50000,100000,200000", "lines per second to try")
	batches := flag.String("batch", "1,20", "lines per datagram to try")
	series := flag.Int("series", 300, "distinct series the lines cycle through (counters, timings, gauges)")
	flag.Parse()
	if *steward == "" {
		fail(fmt.Errorf("give -steward"))
	}
	statsdAddr, httpAddr := freeAddr(), freeAddr()
	dir, err := os.MkdirTemp("", "statsdbench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	conf := fmt.Sprintf(`[metrics]
interval = "1s"
prometheus = true
collectors = ["steward"]
[metrics.statsd]
enabled = true
addr = %q
tcp = false
max_series = 100000
[http]
addr = %q
[programs.main]
main = true
command = ["sleep", "100000"]
`, statsdAddr, httpAddr)
	path := filepath.Join(dir, "steward.toml")
	os.WriteFile(path, []byte(conf), 0o644)
	cmd := exec.Command(*steward, "--config", path)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(time.Minute)
	for received(httpAddr) < 0 {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("steward's /metrics shows no StatsD counters"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	conn, err := net.Dial("udp", statsdAddr)
	if err != nil {
		fail(err)
	}
	lines := make([][]byte, *series)
	for i := range lines {
		switch i % 3 {
		case 0:
			lines[i] = fmt.Appendf(nil, "bench.requests.%d:1|c|#route:/r%d\n", i, i%7)
		case 1:
			lines[i] = fmt.Appendf(nil, "bench.latency.%d:%d|ms\n", i, 1+i%250)
		default:
			lines[i] = fmt.Appendf(nil, "bench.queue.%d:%d|g\n", i, i)
		}
	}
	fmt.Printf("steward %s, %d cores, %d series, %v per rate; the machine may be loaded by other work\n",
		*steward, numCPU(), *series, *duration)
	fmt.Printf("%8s %6s %10s %10s %8s %8s %7s %14s\n", "rate/s", "batch", "sent", "counted", "lost", "kdrops", "cores", "CPU ms/s @10k")
	for _, b := range strings.Split(*batches, ",") {
		batch, _ := strconv.Atoi(b)
		for _, r := range strings.Split(*rates, ",") {
			rate, _ := strconv.Atoi(r)
			before, kBefore, cpuBefore := received(httpAddr), kernelDrops(statsdAddr), cpu(pid)
			start := time.Now()
			sent := send(conn, lines, rate, max(batch, 1), *duration)
			elapsed := time.Since(start)
			cpuUsed := cpu(pid) - cpuBefore
			// The counters are read from the next round's /metrics.
			var got int64
			for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait); time.Sleep(200 * time.Millisecond) {
				if got = received(httpAddr) - before; got >= sent {
					break
				}
			}
			kd := kernelDrops(statsdAddr) - kBefore
			cores := cpuUsed.Seconds() / elapsed.Seconds()
			achieved := float64(sent) / elapsed.Seconds()
			fmt.Printf("%8.0f %6d %10d %10d %8d %8d %7.3f %14.1f\n", achieved, batch, sent, got, sent-got, kd, cores,
				1000*cores*10000/achieved)
		}
	}
}

// send writes about rate lines per second for d, batch lines per
// datagram, paced every millisecond; it returns the lines sent.
func send(c net.Conn, lines [][]byte, rate, batch int, d time.Duration) int64 {
	var sent int64
	var buf []byte
	start := time.Now()
	i := 0
	for {
		el := time.Since(start)
		if el >= d {
			return sent
		}
		due := int64(el.Seconds() * float64(rate))
		if sent >= due {
			time.Sleep(time.Millisecond)
			continue
		}
		for sent < due {
			buf = buf[:0]
			n := 0
			for n < batch && sent+int64(n) < due {
				buf = append(buf, lines[i%len(lines)]...)
				i++
				n++
			}
			c.Write(buf)
			sent += int64(n)
		}
	}
}

var receivedRE = regexp.MustCompile(`(?m)^steward_appmetrics_received_total\{[^}]*input="statsd"[^}]*\} (\S+)$`)

// received is steward's count of StatsD lines, -1 when not shown yet.
func received(addr string) int64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := receivedRE.FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return int64(v)
}

// kernelDrops is the drops column of the UDP socket bound to addr.
func kernelDrops(addr string) int64 {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	want := fmt.Sprintf(":%04X", p)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 12 && strings.HasSuffix(fs[1], want) {
			n, _ := strconv.ParseInt(fs[len(fs)-1], 10, 64)
			return n
		}
	}
	return 0
}

// cpu is the CPU time steward used so far (all its threads).
func cpu(pid int) time.Duration {
	st, err := proc.ReadStat("/proc", pid)
	if err != nil {
		fail(err)
	}
	return time.Duration(st.Utime+st.Stime) * time.Second / 100 // USER_HZ
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + 1
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "statsdbench:", err)
	os.Exit(1)
}
