package store

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkCreateBinding(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	mustCreateSecret(b, s, "gh")
	mustCreateSandbox(b, s, "sb")
	for i := 0; b.Loop(); i++ {
		bd := testBinding("sb", fmt.Sprintf("E%d", i), "gh")
		if err := s.CreateBinding(ctx, &bd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBindingByHash(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	mustCreateSecret(b, s, "gh")
	const n = 1000
	bs := make([]Binding, n)
	for i := range bs {
		bs[i] = testBinding("sb", fmt.Sprintf("E%d", i), "gh")
	}
	mustCreateSandbox(b, s, "sb", bs...)
	for i := 0; b.Loop(); i++ {
		if _, err := s.BindingByHash(ctx, bs[i%n].StandInHash); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendActivity100(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	recs := make([]Activity, 100)
	for i := range recs {
		recs[i] = Activity{Time: t0, SecretID: "sec_gh", SecretName: "gh", SandboxName: "sb",
			Method: "POST", Host: "api.github.com", Path: "/graphql", Status: 200, Outcome: "swapped"}
	}
	for b.Loop() {
		if err := s.AppendActivity(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
}
