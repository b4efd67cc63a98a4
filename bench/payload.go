package main

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/deskrelay/deskrelay/connectors/servicenow"
)

// Callers in the generated directory are caller<N>@bench.example.com with
// user id u<N>; the share of each profile follows the 2022 benchmark in
// DESIGN.md (doer 54%, prioritizer 18%, trier 8%, supported 19%), and one
// caller in ten is stored as survey scores instead of a profile name.
const callerDomain = "bench.example.com"

// profileCSV returns a profile directory of n callers as the CSV that
// profiles.file reads.
func profileCSV(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 64)
	b.WriteString("email,user_id,profile,competence,attitude\n")
	for i := range n {
		fmt.Fprintf(&b, "caller%d@%s,u%d,", i, callerDomain, i)
		switch {
		case i%10 == 9: // scores, classified by the quadrant on load
			fmt.Fprintf(&b, ",%d,%d\n", i%11, (i/11)%11)
		default:
			b.WriteString(profileOf(i))
			b.WriteString(",,\n")
		}
	}
	return b.Bytes()
}

func profileOf(i int) string {
	switch p := i % 100; {
	case p < 54:
		return "doer"
	case p < 72:
		return "prioritizer"
	case p < 80:
		return "trier"
	case p < 99:
		return "supported"
	}
	return "doer"
}

// Kinds of incident the generator cycles through: category, subcategory,
// configuration item and a title, so that every branch of the example
// rule tree is taken.
var incidents = []struct{ category, subcategory, ci, title string }{
	{"hardware", "laptop", "LT-4471", "Laptop does not boot after BIOS update"},
	{"hardware", "printer", "PRN-3F-02", "Printer on 3rd floor shows paper jam but is empty"},
	{"software", "email", "Outlook", "Outlook keeps asking for my password"},
	{"network", "vpn", "VPN-GW-2", "VPN disconnects every hour"},
	{"request", "access", "SAP", "Need access to the SAP finance module"},
	{"inquiry", "how-to", "Teams", "How do I share my screen in a Teams meeting?"},
	{"software", "erp", "SAP", "SAP transaction VA01 dumps with a short dump"},
	{"hardware", "device", "DOCK-12", "Docking station does not detect the second monitor"},
}

var channels = []string{"portal", "email", "phone", "chat", "virtual_agent", "walk_in"}

// description is the long text that brings a ticket to about 1.5 KB, the
// size of a ServiceNow incident webhook with a filled-in description.
const description = "Reported through the service portal. Since this morning the problem " +
	"comes back every time I restart the machine. I already tried the steps from the " +
	"knowledge article (restart, sign out and in again, clear the cache, reconnect the " +
	"network cable) and none of them helped. Colleagues on the same floor do not seem to " +
	"have the issue, so it is probably something on my device or my account. I have a " +
	"customer presentation at 14:00 and need this working by then; if somebody could call " +
	"me before noon that would help a lot. Error shown: 0x80070005 access denied, followed " +
	"by a dialog asking to contact the administrator. Screenshots are attached to the " +
	"original e-mail. Device was re-imaged two weeks ago during the Windows 11 rollout. " +
	"Last successful login: yesterday 17:40 from the office network, building B, floor 3."

// payload builds request bodies. It is not safe for concurrent use: each
// sender has its own.
type payload struct {
	source  string // "generic" (a normalised ticket) or "servicenow" (a Table API record)
	run     string // makes ids unique across runs
	callers int
	buf     []byte
	now     time.Time
}

// ticketID is the ticket id of request seq; parseSeq reverses it.
func ticketID(run string, seq int64) string { return "BENCH" + run + "-" + strconv.FormatInt(seq, 10) }

// parseSeq returns the sequence number of a ticket id made by ticketID,
// or -1.
func parseSeq(run, id string) int64 {
	prefix := "BENCH" + run + "-"
	if len(id) <= len(prefix) || id[:len(prefix)] != prefix {
		return -1
	}
	n, err := strconv.ParseInt(id[len(prefix):], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// body returns the body of request seq. The returned slice is reused by
// the next call. Callers are spread over the directory by a
// multiplicative hash of seq; every 50th caller is not in it.
func (p *payload) body(seq int64) []byte {
	inc := incidents[seq%int64(len(incidents))]
	caller := (seq * 2654435761) % int64(p.callers)
	if seq%50 == 49 {
		caller += int64(p.callers) // not in the directory: profile unknown
	}
	impact, urgency := 1+seq%3, 1+(seq/3)%3
	at := p.now.Add(time.Duration(seq) * time.Millisecond).UTC()
	id := ticketID(p.run, seq)
	b := p.buf[:0]
	switch p.source {
	case "servicenow":
		// Date-times as the Table API's database values: UTC, no zone
		// marker, whole seconds.
		b = fmt.Appendf(b, `{"sys_id":%q,"number":"INC%07d","sys_updated_on":%q,"sys_mod_count":"0","opened_at":%q,`,
			id, seq%10000000, at.Format(servicenow.TimeLayout), p.now.UTC().Format(servicenow.TimeLayout))
		b = fmt.Appendf(b, `"short_description":%q,"description":%q,"state":"1","impact":"%d","urgency":"%d",`,
			inc.title, description, impact, urgency)
		b = fmt.Appendf(b, `"category":%q,"subcategory":%q,"contact_type":%q,"cmdb_ci":%q,`,
			inc.category, inc.subcategory, channels[seq%int64(len(channels))], inc.ci)
		b = fmt.Appendf(b, `"caller_id":{"link":"https://example.service-now.com/api/now/table/sys_user/u%d","value":"u%d"},"caller_id.email":"caller%d@%s",`,
			caller, caller, caller, callerDomain)
		b = fmt.Appendf(b, `"assignment_group":{"link":"https://example.service-now.com/api/now/table/sys_user_group/0d63","value":"0d637615555d8dab1805ba562bab6fed"}}`)
	default:
		b = fmt.Appendf(b, `{"id":%q,"number":"INC%07d","title":%q,"description":%q,`, id, seq%10000000, inc.title, description)
		b = fmt.Appendf(b, `"caller":{"id":"u%d","email":"caller%d@%s","name":"Bench Caller %d"},`, caller, caller, callerDomain, caller)
		b = fmt.Appendf(b, `"channel":%q,"category":%q,"subcategory":%q,"impact":%d,"urgency":%d,"state":"new",`,
			channels[seq%int64(len(channels))], inc.category, inc.subcategory, impact, urgency)
		b = fmt.Appendf(b, `"assignment_group":"Service Desk","configuration_item":%q,"opened_at":%q,"updated_at":%q`,
			inc.ci, p.now.UTC().Format(time.RFC3339), at.Format(time.RFC3339Nano))
		if seq%20 == 0 {
			b = append(b, `,"tags":["vip","bench"]`...)
		} else {
			b = append(b, `,"tags":["bench"]`...)
		}
		b = append(b, '}')
	}
	p.buf = b
	return b
}
