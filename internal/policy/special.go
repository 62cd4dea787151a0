package policy

import "net/netip"

// Kinds returned by IsSpecial. Fixed strings: logs and tests use them.
const (
	KindMetadata      = "metadata"      // cloud instance metadata service
	KindUnspecified   = "unspecified"   // 0.0.0.0, ::
	KindThisNetwork   = "this-network"  // 0.0.0.0/8 (RFC 791), reaches the local host on Linux
	KindLoopback      = "loopback"      // 127.0.0.0/8, ::1
	KindPrivate       = "private"       // RFC 1918, fc00::/7 ULA, fec0::/10, 64:ff9b:1::/48
	KindLinkLocal     = "link-local"    // 169.254.0.0/16, fe80::/10
	KindCGNAT         = "cgnat"         // 100.64.0.0/10 shared address space (RFC 6598)
	KindMulticast     = "multicast"     // 224.0.0.0/4, ff00::/8
	KindBroadcast     = "broadcast"     // 255.255.255.255
	KindIETFProtocol  = "ietf-protocol" // 192.0.0.0/24, 2001::/23 (RFC 6890)
	KindBenchmarking  = "benchmarking"  // 198.18.0.0/15, 2001:2::/48 (RFC 2544, RFC 5180)
	KindReserved      = "reserved"      // 240.0.0.0/4, 192.88.99.0/24, IPv6 outside 2000::/3
	KindDocumentation = "documentation" // TEST-NETs (RFC 5737), 2001:db8::/32, 3fff::/20
	KindInvalid       = "invalid"       // the zero netip.Addr
)

// metadataAddrs are cloud metadata endpoints. They are classified before
// their ranges so logs say why the address matters. 169.254.169.254 serves
// AWS, GCP, Azure and others; fd00:ec2::254 is AWS's IPv6 endpoint;
// 169.254.170.2 is AWS ECS task metadata; 100.100.100.200 is Alibaba Cloud;
// 192.0.0.192 is Oracle Cloud's (classic) endpoint.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("192.0.0.192"),
}

type specialRange struct {
	prefix netip.Prefix
	kind   string
}

func sr(p, kind string) specialRange { return specialRange{netip.MustParsePrefix(p), kind} }

// special4 is checked in order; the first match wins, so narrower ranges
// come before the ranges holding them. From the IANA IPv4 Special-Purpose
// Address Registry (RFC 6890), minus the globally reachable anycast entries
// (AS112, AMT) that are real public services.
var special4 = []specialRange{
	sr("0.0.0.0/32", KindUnspecified),
	sr("0.0.0.0/8", KindThisNetwork),
	sr("127.0.0.0/8", KindLoopback),
	sr("10.0.0.0/8", KindPrivate),
	sr("172.16.0.0/12", KindPrivate),
	sr("192.168.0.0/16", KindPrivate),
	sr("169.254.0.0/16", KindLinkLocal),
	sr("100.64.0.0/10", KindCGNAT),
	sr("224.0.0.0/4", KindMulticast),
	sr("255.255.255.255/32", KindBroadcast),
	sr("192.0.0.0/24", KindIETFProtocol),
	sr("198.18.0.0/15", KindBenchmarking),
	sr("192.0.2.0/24", KindDocumentation),
	sr("198.51.100.0/24", KindDocumentation),
	sr("203.0.113.0/24", KindDocumentation),
	sr("192.88.99.0/24", KindReserved), // deprecated 6to4 relay anycast (RFC 7526)
	sr("240.0.0.0/4", KindReserved),
}

// special6 is checked in order after the embedded-IPv4 forms. Anything
// outside 2000::/3 (the only range IANA allocates for global unicast) that
// is not listed is KindReserved: that covers ::/8 (including the deprecated
// IPv4-compatible ::a.b.c.d form), 100::/64 discard-only, SIIT
// ::ffff:0:a.b.c.d and whatever is assigned later.
var special6 = []specialRange{
	sr("::/128", KindUnspecified),
	sr("::1/128", KindLoopback),
	sr("fc00::/7", KindPrivate),
	sr("fec0::/10", KindPrivate), // deprecated site-local (RFC 3879)
	sr("fe80::/10", KindLinkLocal),
	sr("ff00::/8", KindMulticast),
	sr("64:ff9b:1::/48", KindPrivate), // local-use NAT64 (RFC 8215)
	sr("2001:db8::/32", KindDocumentation),
	sr("3fff::/20", KindDocumentation), // RFC 9637
	sr("2001:2::/48", KindBenchmarking),
	sr("2001::/23", KindIETFProtocol), // includes Teredo 2001::/32
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052 well-known prefix
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056
	global6   = netip.MustParsePrefix("2000::/3")
)

// IsSpecial reports whether addr is not a public unicast address, with a
// short kind ("loopback", "private", "metadata", ...; the Kind constants).
//
// IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) are classified as the IPv4
// address they carry. So are NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
// addresses, whose traffic ends at the embedded IPv4 address: 64:ff9b::a00:1
// is "private" like 10.0.0.1, while NAT64 of a public address is public. The
// zero Addr is special with kind "invalid". Zones are ignored.
func IsSpecial(addr netip.Addr) (bool, string) {
	if !addr.IsValid() {
		return true, KindInvalid
	}
	addr = addr.Unmap().WithZone("")
	for _, m := range metadataAddrs {
		if addr == m {
			return true, KindMetadata
		}
	}
	if addr.Is4() {
		return lookup(special4, addr)
	}
	if nat64.Contains(addr) {
		b := addr.As16()
		return IsSpecial(netip.AddrFrom4([4]byte(b[12:16])))
	}
	if sixToFour.Contains(addr) {
		b := addr.As16()
		return IsSpecial(netip.AddrFrom4([4]byte(b[2:6])))
	}
	if ok, kind := lookup(special6, addr); ok {
		return ok, kind
	}
	if !global6.Contains(addr) {
		return true, KindReserved
	}
	return false, ""
}

func lookup(ranges []specialRange, addr netip.Addr) (bool, string) {
	for _, r := range ranges {
		if r.prefix.Contains(addr) {
			return true, r.kind
		}
	}
	return false, ""
}

// specialPrefix reports whether every address of p lies in one
// special-purpose range (10.0.0.0/8, 10.1.0.0/16, 169.254.169.254/32): only
// such an allow CIDR unlocks special addresses, so allowOut ["0.0.0.0/0"],
// meant as "the internet", does not also open the metadata service and the
// private networks.
func specialPrefix(p netip.Prefix) bool {
	p = p.Masked()
	if p.Addr().Is6() && p.Bits() >= 96 && nat64.Contains(p.Addr()) {
		// NAT64: judge the IPv4 prefix it embeds.
		b := p.Addr().As16()
		return specialPrefix(netip.PrefixFrom(netip.AddrFrom4([4]byte(b[12:16])), p.Bits()-96))
	}
	ranges := special4
	if p.Addr().Is6() {
		ranges = special6
	}
	for _, r := range ranges {
		if r.prefix.Bits() <= p.Bits() && r.prefix.Contains(p.Addr()) {
			return true
		}
	}
	if p.Bits() == p.Addr().BitLen() {
		// A single address: special if it is (a metadata endpoint, say).
		special, _ := IsSpecial(p.Addr())
		return special
	}
	return false
}
