package collectors

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Counting TCP sockets by state through /proc/net/tcp and tcp6 makes the
// kernel walk its whole established-socket hash table four times (each
// file twice: the read that finds the end starts the walk over), whatever
// the number of sockets: about 0.6 ms per walk on a machine with a large
// table. The sock_diag netlink interface (what ss uses) answers with one
// walk: its TCPDIAG_GETSOCK request, kept for old tools, asks for IPv4 and
// IPv6 at once. It sees the caller's network namespace, as /proc/net does.
// The collector uses it when reading the live system (root "/") and falls
// back to the files when it fails.

const (
	tcpdiagGetsock = 18 // TCPDIAG_GETSOCK, linux/inet_diag.h
	// sizeof(struct inet_diag_req): family, src_len, dst_len, ext (4
	// bytes), struct inet_diag_sockid (48), states (4), dbs (4).
	sizeofInetDiagReq = 60
	// struct inet_diag_msg begins with family, then state.
	inetDiagMsgState = 1
	tcpfAll          = 0xfff // every state, 1 << TCP_ESTABLISHED ... TCP_CLOSING
)

// tcpDiag counts the TCP sockets of steward's network namespace by state.
type tcpDiag struct {
	buf []byte
	seq uint32
}

func (d *tcpDiag) count(counts *[len(tcpStates)]int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	d.seq++
	req := make([]byte, unix.SizeofNlMsghdr+sizeofInetDiagReq)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], tcpdiagGetsock)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], d.seq)
	ne.PutUint32(req[unix.SizeofNlMsghdr+52:], tcpfAll) // idiag_states
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	if d.buf == nil {
		d.buf = make([]byte, 32<<10)
	}
	for {
		n, _, err := unix.Recvfrom(fd, d.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		if done, err := countDiagStates(d.buf[:n], counts); done || err != nil {
			return err
		}
	}
}

// countDiagStates counts the sockets of one read of netlink messages by
// state; done is true at the dump's end.
func countDiagStates(b []byte, counts *[len(tcpStates)]int) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return false, errors.New("sock_diag: truncated message")
		}
		msg := b[unix.SizeofNlMsghdr:l]
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(msg) >= 4 {
				if errno := int32(ne.Uint32(msg)); errno != 0 {
					return false, fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
				}
			}
			return false, errors.New("sock_diag: error")
		case tcpdiagGetsock:
			if len(msg) > inetDiagMsgState {
				if st := int(msg[inetDiagMsgState]); st >= 1 && st <= len(counts) {
					counts[st-1]++
				}
			}
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return false, nil
}
