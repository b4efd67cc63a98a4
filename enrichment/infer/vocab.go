package infer

import (
	"fmt"
	"strings"
)

// A signal is a group of words and phrases that say the same thing about
// the caller, with its weight on each axis: positive competence means
// "knows IT", positive attitude means "fixes it myself". The weights are
// log-odds added to the axis score; they were set by hand on the tuning
// half of testdata/labelled.jsonl (see docs/inference.md).
type signal struct {
	name       string
	competence float64
	attitude   float64
	phrases    []string
}

// The signals that show technical knowledge; a ticket without any of them
// (or an error code) counts as plain language.
const (
	technicalGroup = 0
	diagnosisGroup = 2
)

// signals is the built-in vocabulary. Phrases are written naturally and
// normalised like the text ("I've" matches "ive", "re-image" "reimage").
var signals = []signal{
	technicalGroup: {name: "technical_term", competence: 0.55, phrases: []string{
		// network
		"dns", "dhcp", "nslookup", "ipconfig", "flushdns", "traceroute", "tracert", "subnet", "vlan",
		"gateway", "mtu", "ipv4", "ipv6", "tcp", "udp", "port 22", "port 443", "firewall", "acl", "proxy",
		"pac file", "tls", "ssl", "certificate", "cert", "root ca", "cname", "spf", "dkim", "dmarc", "smtp",
		"imap", "mpls", "ipsec", "phase 1", "psk", "802.1x", "access point", "split tunnel", "split dns",
		"latency", "packet loss", "wireshark", "iperf", "smb", "rdp", "mstsc", "ssh", "interface metric",
		"adapter", "dbm", "mbit", "gbit", "vpn client", "vpn profile", "tunnel", "anyconnect", "globalprotect",
		// identity and endpoint management
		"kerberos", "klist", "ldap", "saml", "oauth", "sso", "token", "okta", "entra", "azure ad", "aad",
		"conditional access", "gpo", "gpupdate", "group policy", "intune", "mdm", "compliance policy",
		"sspr", "pim", "fido2", "temporary access pass", "ad group", "service account", "autoenrolment",
		"device objects", "stale", "sign-in logs", "lockout source",
		// windows and hardware internals
		"registry", "regedit", "regsvr32", "powershell", "cmd", "event viewer", "event id", "eventvwr",
		"safe mode", "tpm", "bios", "uefi", "firmware", "driver", "drivers", "bitlocker", "manage-bde",
		"sfc", "dism", "device manager", "code 43", "wsl", "hyper-v", "virtualization", "vm", "vms",
		"docker", "nvme", "ssd", "m.2", "displayport", "displaylink", "thunderbolt", "smart", "spooler",
		"print server", "papercut", "fslogix", "profile container", "citrix", "vdi", "sccm", "dll", "exe",
		"com add-ins", "add-in", "cve", "cumulative update", "support pack", "process explorer",
		"partition", "partitioning", "powercfg", "hz", "filter keys",
		// mail and office internals
		"autodiscover", "ost", "pst", "cached mode", "transport rule", "connector", "message header",
		"mailbox folder permission", "automapping", "auto-map", "outlook profile", "search index",
		"indexed locations", "server-side", "client-only", "manifest", "csp", "cache",
		"power query", "data source", "gateway credentials", "vba", "macro", "scripting",
		// development and platforms
		"git", "npm", "python", "api", "sql", "ssis", "jenkins", "splunk", "terraform", "repo", "repos",
		"pipeline", "postman", "json", "subscription", "contributor", "sandbox", "staging", "test system",
		"logs", "log", "trace", "dev tools", "f12", "cookies", "private window", "tarball",
		// SAP
		"transaction", "authorization object", "su53", "se16n", "sap security", "basis", "snc",
		"release strategy", "dump", "quota", "roles", "background job",
	}},
	{name: "tried_already", competence: 0.3, attitude: 0.55, phrases: []string{
		"already tried", "i've tried", "i have tried", "tried another", "tried a", "already rebooted",
		"reinstalled", "reinstalling", "rebooted", "re-registered", "recreated",
		"cleared", "flushed", "ran", "checked", "verified", "tested", "updated the", "disabled", "re-enabled",
		"swapped", "rolled back", "compared", "deactivated", "removed and re-added", "reset it",
		"signed out", "unlinked", "already linked", "already filled",
	}},
	diagnosisGroup: {name: "diagnosis", competence: 0.6, phrases: []string{
		"probably", "suspect", "looks like", "seems to be", "workaround", "i know it's",
		"i know the", "i assume", "root cause", "so it's not", "so it's the", "so it's my", "it's hardware",
		"known fix", "the usual", "not a phone script",
	}},
	{name: "uncertainty", competence: -0.75, phrases: []string{
		"not sure", "no idea", "don't know", "don't understand", "didn't understand",
		"i don't understand", "confused", "got confused", "not very technical", "not technical",
		"not good with computers", "not comfortable", "afraid", "scared", "worried", "by mistake",
		"by accident", "suddenly", "strange", "weird", "what does that mean", "is that bad",
		"is that right", "is it safe", "is this normal", "did i", "what did i", "what i did",
		"didn't change anything", "haven't touched", "it always worked", "the thing", "the little",
		"the green one", "something", "i pressed", "i clicked", "too many", "so many", "lots of questions",
		"these network things", "those things", "maybe it's", "maybe i", "i think it might",
		"could it be", "it says something",
	}},
	{name: "how_to", competence: -0.45, attitude: 0.6, phrases: []string{
		"how do i", "how can i", "how to", "where do i", "where can i", "where is", "what should i",
		"what do i", "which one", "is there a way", "is there a setting", "is there a trick",
		"is there a guide", "can i do it myself", "send me the steps", "send me instructions",
		"instructions", "simple steps", "steps", "step by step", "a guide", "explain", "tips",
		"i'd like to try", "i want to try", "before asking", "learn", "so i don't have to ask",
		"i'd prefer to do it myself", "i can fill it in", "what else can i", "what else should i",
		"anything else i", "something else i should",
	}},
	{name: "self_service", attitude: 0.65, phrases: []string{
		"myself", "i'll do", "i'll install", "i'll set", "i'll migrate", "i'll update", "i'll notify",
		"i can do", "i can pick", "pick it up", "pick one up", "i'll pick", "happy to", "can test",
		"let me know if you want", "just tell me", "point me", "knowledge article", "kb", "knowledge base",
		"article", "faq", "self-service", "company portal", "no action needed",
		"closing this", "fyi", "i'll drop", "i can drop", "i followed", "followed the", "i read", "i found",
		"i looked", "i watched", "i searched",
	}},
	{name: "delegation", attitude: -0.7, phrases: []string{
		"please fix", "fix it for me", "do it for me", "for me", "sort it out", "sort out",
		"sort both", "take care", "handle", "please handle", "just do", "just swap", "just make",
		"can someone", "could someone", "can somebody", "could somebody", "someone", "somebody",
		"come and", "come to", "come by", "come again", "send someone", "call me", "phone me",
		"call me back", "ring me", "take over my screen", "remote in", "remotely", "from your side",
		"keep it", "leave it with you", "collect it", "bring", "please arrange", "arrange",
		"please process", "please do", "push it", "end to end", "set up everything", "loaner",
		"with a loaner", "please get", "get someone", "please set", "please assign", "please update",
		"please raise", "please escalate", "escalate to", "make it happen", "can you fix", "please unlock",
	}},
	{name: "no_time", competence: 0.2, attitude: -0.6, phrases: []string{
		"no time", "don't have time", "don't have the time", "haven't got time", "can't spend",
		"busy", "between meetings", "back-to-back", "back to back", "in meetings", "board", "exec",
		"cfo", "asap", "deadline", "my assistant", "assistant", "confirm when done", "when done",
		"once it's done", "once done", "update me", "keep me posted", "let me know when",
		"i don't need to be involved", "don't need to see", "don't want to deal", "rather not",
		"travelling", "airport", "flights", "flight", "trip", "client call", "investor", "keynote",
		"i won't be at my desk", "don't want to file",
	}},
	{name: "familiar_people", competence: -0.4, attitude: -0.45, phrases: []string{
		"last time", "same as last", "same problem", "me again", "not working again", "he fixed", "she fixed", "helped me",
		"the person who", "the gentleman", "the lady", "usually helps me", "patient", "in person",
		"show me", "sit with me", "do it with me", "set it up with me", "knows my computer",
		"easier if you see",
	}},
	{name: "process_knowledge", competence: 0.3, phrases: []string{
		"approval attached", "approved", "approver", "cost centre", "cost center", "change request",
		"po number", "ritm", "chg", "least privilege", "time-boxed", "time-limited", "per the",
		"as per the", "warranty",
	}},
	{name: "plain_plea", competence: -0.35, attitude: -0.2, phrases: []string{
		"please help", "help me", "sorry", "sorry to bother", "thank you very much", "kind regards",
		"best wishes", "i need to work", "i can't work", "it's hard to explain", "it just shows",
		"doesn't work anymore", "picture", "big screen", "big letters",
	}},
	{name: "several_problems", competence: 0.15, attitude: -0.35, phrases: []string{
		"two things", "three things", "all three", "several", "both", "all of it",
	}},
}

// compile normalises the phrases of sigs with the scanner's own rules and
// indexes them. It fails on an empty phrase, a phrase longer than
// maxPhrase words, a phrase listed twice or more entries than [seen] holds.
func compile(sigs []signal) (*vocab, error) {
	v := &vocab{words: make(map[string]int32), ends: make(map[string][]int32)}
	dup := make(map[string]string)
	for g, s := range sigs {
		for _, p := range s.phrases {
			words := normalise(p)
			key := strings.Join(words, " ")
			switch {
			case len(words) == 0:
				return nil, fmt.Errorf("signal %s: phrase %q has no words", s.name, p)
			case len(words) > maxPhrase:
				return nil, fmt.Errorf("signal %s: phrase %q has more than %d words", s.name, p, maxPhrase)
			case dup[key] != "":
				return nil, fmt.Errorf("signal %s: phrase %q already in signal %s", s.name, p, dup[key])
			}
			dup[key] = s.name
			i := int32(len(v.entries))
			v.entries = append(v.entries, entry{words: words, competence: s.competence, attitude: s.attitude, group: uint8(g)})
			if len(words) == 1 {
				v.words[words[0]] = i
			} else {
				last := words[len(words)-1]
				v.ends[last] = append(v.ends[last], i)
			}
		}
	}
	if len(v.entries) > len(seen{})*64 {
		return nil, fmt.Errorf("vocabulary has %d entries, at most %d fit", len(v.entries), len(seen{})*64)
	}
	return v, nil
}

// normalise splits a phrase into words as the scanner reads them.
func normalise(p string) []string {
	var ws []string
	words(p, func(w []byte, _ shape) {
		if w != nil {
			ws = append(ws, string(w))
		}
	})
	return ws
}
