package fluentd

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// udpHeartbeat sends the spec's UDP heartbeat (one 0x00 byte to the
// server's port) every interval; Fluentd's in_forward answers each with
// 0x00. When no answer came for three intervals, down is closed so the
// sender drops the connection and fails over. Fluent Bit does not answer
// UDP heartbeats: leave heartbeat = "none" for it.
func udpHeartbeat(addr string, interval time.Duration, stop <-chan struct{}, down chan<- struct{}, log *slog.Logger) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		log.Warn("fluentd: heartbeat socket", "err", err)
		return
	}
	defer c.Close()
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	go func() {
		buf := make([]byte, 16)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				select {
				case <-stop:
					return
				default:
				}
				// ECONNREFUSED from an ICMP port-unreachable: no answer;
				// keep listening.
				time.Sleep(interval / 4)
				continue
			}
			if n > 0 {
				last.Store(time.Now().UnixNano())
			}
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_, _ = c.Write([]byte{0})
			if time.Since(time.Unix(0, last.Load())) > 3*interval {
				close(down)
				return
			}
		}
	}
}
