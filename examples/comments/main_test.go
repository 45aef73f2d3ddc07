package main

import (
	"bytes"
	"context"
	"maps"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	t.Parallel()
	const n = 12
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	sum, err := run(ctx, &out, n)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	})

	// What the inputs say should happen.
	wantIllegal := map[string]int{}
	created := 0
	for _, c := range comments(n) {
		if forbiddenWord(c.Text) != "" {
			wantIllegal[c.User]++
		} else {
			created++
		}
	}
	if created == 0 || len(wantIllegal) == 0 {
		t.Fatalf("%d comments make %d created and %v illegal: pick an n with both", n, created, wantIllegal)
	}

	if sum.Produced != n || sum.Created+sum.Illegal != n {
		t.Errorf("produced %d, created %d + illegal %d: want %d in all", sum.Produced, sum.Created, sum.Illegal, n)
	}
	if sum.Created != created {
		t.Errorf("created %d, want %d", sum.Created, created)
	}
	if total := sumOf(sum.PerArticle); total != sum.Created {
		t.Errorf("comments per article %v add up to %d, want created %d", sum.PerArticle, total, sum.Created)
	}
	if !maps.Equal(sum.IllegalPerUser, wantIllegal) {
		t.Errorf("illegal per user %v, want %v", sum.IllegalPerUser, wantIllegal)
	}
	if total := sumOf(sum.Notifications); total != sum.Created {
		t.Errorf("%d notifications %v, want one per created comment (%d)", total, sum.Notifications, sum.Created)
	}
	// Each author is notified once per comment on their articles.
	wantNotified := map[string]int{}
	for _, a := range articles {
		if k := sum.PerArticle[a.slug]; k > 0 {
			wantNotified[a.author] += k
		}
	}
	if !maps.Equal(sum.Notifications, wantNotified) {
		t.Errorf("notifications per author %v, want %v", sum.Notifications, wantNotified)
	}

	groups := map[string]bool{}
	for _, g := range sum.Groups {
		groups[g.Group] = true
		if len(g.Partitions) != partitions {
			t.Errorf("group %s: %d partitions described, want %d", g.Group, len(g.Partitions), partitions)
		}
		for _, p := range g.Partitions {
			if p.Lag != 0 {
				t.Errorf("group %s: %s/%d has lag %d, want 0", g.Group, p.Topic, p.Partition, p.Lag)
			}
		}
	}
	for _, g := range []string{"moderation", "article-counts", "notify-authors", "illegal-per-user"} {
		if !groups[g] {
			t.Errorf("summary has no group %s", g)
		}
	}
}

func TestForbiddenWord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, want string
	}{
		{"clean", "Great write-up, thanks!", ""},
		{"word", "This library is a scam", "scam"},
		{"upper case", "Win big at the online CASINO", "casino"},
		{"inside punctuation", "Cheap followers at spam.example", "spam"},
		{"part of a longer word", "scampi and spammers", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := forbiddenWord(tt.text); got != tt.want {
				t.Errorf("forbiddenWord(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func sumOf(m map[string]int) int {
	total := 0
	for _, v := range m {
		total += v
	}
	return total
}
