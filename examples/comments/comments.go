package main

import (
	"encoding/json"
	"strings"
	"unicode"
)

// Comment is the JSON value of every record in the three topics: moderation passes the
// value on unchanged, only the topic and the key change.
type Comment struct {
	ID      int    `json:"id"`
	Article string `json:"article"`
	Author  string `json:"author"` // the article's author, who is notified
	User    string `json:"user"`   // who wrote the comment
	Text    string `json:"text"`
}

// value encodes c as a record value.
func (c Comment) value() []byte {
	b, _ := json.Marshal(c) // a struct of strings and an int always encodes
	return b
}

// The inputs are fixed lists, cycled, so every run sends the same comments and prints
// the same summary.
var (
	// articles and their authors.
	articles = []struct{ slug, author string }{
		{"go-generics", "ana"},
		{"kafka-vs-nats", "ben"},
		{"raft-explained", "chen"},
		{"zero-alloc-json", "dora"},
	}
	// posts are what users write; mallory and trent use forbidden words.
	posts = []struct{ user, text string }{
		{"eve", "Great write-up, thanks!"},
		{"finn", "Could you share the benchmark code?"},
		{"mallory", "Cheap followers at spam.example"},
		{"gus", "I disagree with the second point."},
		{"hana", "This finally made offsets click for me."},
		{"mallory", "Win big at the online CASINO"},
		{"eve", "Typo in the third paragraph."},
		{"trent", "This library is a scam"},
		{"finn", "How does this compare to Kafka Streams?"},
		{"gus", "Bookmarked."},
		{"mallory", "spam spam spam"},
	}
	// forbidden are the words moderation rejects, in lower case.
	forbidden = []string{"spam", "scam", "casino"}
)

// comments returns the n comments the producer sends, with ids 1 to n.
func comments(n int) []Comment {
	out := make([]Comment, 0, n)
	for i := range n {
		a, p := articles[i%len(articles)], posts[i%len(posts)]
		out = append(out, Comment{ID: i + 1, Article: a.slug, Author: a.author, User: p.user, Text: p.text})
	}
	return out
}

// forbiddenWord returns the first forbidden word of text, ignoring case, or "" when
// there is none. Whole words only: "scampi" is fine.
func forbiddenWord(text string) string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) })
	for _, w := range words {
		for _, f := range forbidden {
			if w == f {
				return f
			}
		}
	}
	return ""
}
