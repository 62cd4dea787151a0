package policy

import (
	"net/netip"
	"testing"
)

func TestIsSpecial(t *testing.T) {
	tests := []struct {
		addr string
		kind string // "" means public
	}{
		// Metadata is checked before the ranges holding it.
		{"169.254.169.254", KindMetadata},
		{"::ffff:169.254.169.254", KindMetadata},
		{"fd00:ec2::254", KindMetadata},
		{"169.254.170.2", KindMetadata},
		{"100.100.100.200", KindMetadata},
		{"192.0.0.192", KindMetadata},
		{"64:ff9b::a9fe:a9fe", KindMetadata},

		{"0.0.0.0", KindUnspecified},
		{"::", KindUnspecified},
		{"::ffff:0.0.0.0", KindUnspecified},
		{"0.1.2.3", KindThisNetwork},
		{"127.0.0.1", KindLoopback},
		{"127.255.255.254", KindLoopback},
		{"::1", KindLoopback},
		{"::ffff:127.0.0.1", KindLoopback},
		{"10.0.0.1", KindPrivate},
		{"172.16.0.1", KindPrivate},
		{"172.31.255.255", KindPrivate},
		{"192.168.1.1", KindPrivate},
		{"::ffff:192.168.1.1", KindPrivate},
		{"fc00::1", KindPrivate},
		{"fd12:3456::1", KindPrivate},
		{"fec0::1", KindPrivate},
		{"64:ff9b:1::1", KindPrivate},
		{"169.254.1.1", KindLinkLocal},
		{"fe80::1", KindLinkLocal},
		{"fe80::1%eth0", KindLinkLocal},
		{"100.64.0.1", KindCGNAT},
		{"100.127.255.255", KindCGNAT},
		{"224.0.0.1", KindMulticast},
		{"239.255.255.250", KindMulticast},
		{"ff02::1", KindMulticast},
		{"255.255.255.255", KindBroadcast},
		{"192.0.0.1", KindIETFProtocol},
		{"2001::1", KindIETFProtocol},
		{"198.18.0.1", KindBenchmarking},
		{"198.19.255.255", KindBenchmarking},
		{"2001:2::1", KindBenchmarking},
		{"240.0.0.1", KindReserved},
		{"192.88.99.1", KindReserved},
		{"::7f00:1", KindReserved}, // IPv4-compatible (deprecated)
		{"100::1", KindReserved},   // discard-only
		{"4000::1", KindReserved},  // unallocated
		{"192.0.2.1", KindDocumentation},
		{"198.51.100.1", KindDocumentation},
		{"203.0.113.1", KindDocumentation},
		{"2001:db8::1", KindDocumentation},
		{"3fff::1", KindDocumentation},

		// Embedded IPv4: NAT64 and 6to4 are classified by what they carry.
		{"64:ff9b::a00:1", KindPrivate},
		{"64:ff9b::7f00:1", KindLoopback},
		{"2002:7f00:1::1", KindLoopback},
		{"2002:a00:1::", KindPrivate},
		{"64:ff9b::102:304", ""},
		{"2002:102:304::1", ""},

		// Public unicast, including neighbours of special ranges.
		{"1.1.1.1", ""},
		{"8.8.8.8", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"198.17.255.255", ""},
		{"198.20.0.0", ""},
		{"223.255.255.255", ""},
		{"169.254.169.253", KindLinkLocal},
		{"::ffff:1.1.1.1", ""},
		{"2606:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"2001:200::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			special, kind := IsSpecial(netip.MustParseAddr(tt.addr))
			if special != (tt.kind != "") || kind != tt.kind {
				t.Errorf("IsSpecial(%q) = %v, %q, want %v, %q", tt.addr, special, kind, tt.kind != "", tt.kind)
			}
		})
	}
}

func TestIsSpecialInvalid(t *testing.T) {
	if special, kind := IsSpecial(netip.Addr{}); !special || kind != KindInvalid {
		t.Errorf("IsSpecial(zero Addr) = %v, %q, want true, %q", special, kind, KindInvalid)
	}
}
