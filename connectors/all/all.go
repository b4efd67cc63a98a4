// Package all links every vendor connector into the binary. Import it for
// its side effects: each vendor registers itself from init.
package all

import (
	_ "github.com/deskrelay/deskrelay/connectors/freshservice" // Freshservice: workflow webhooks and ticket polling
	_ "github.com/deskrelay/deskrelay/connectors/generic"      // any tool that POSTs JSON
	_ "github.com/deskrelay/deskrelay/connectors/jsm"          // Jira Service Management: signed webhooks and JQL polling
	_ "github.com/deskrelay/deskrelay/connectors/servicenow"   // ServiceNow: Business Rule webhooks and Table API polling
	_ "github.com/deskrelay/deskrelay/connectors/zendesk"      // Zendesk Support: signed webhooks and incremental export
)
