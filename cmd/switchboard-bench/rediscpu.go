package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// redisSample is what the tool reads from Redis around a measured phase:
// its CPU time, system plus user (INFO CPU's used_cpu_sys and
// used_cpu_user), and its command statistics. Both are the whole server's:
// a Redis that serves others during a measurement charges their work to it
// too.
type redisSample struct {
	cpu      time.Duration
	commands map[string]RedisCommand
}

// RedisCommand is one command's share of a measured phase, from INFO
// commandstats: calls and the microseconds Redis spent in them. A script's
// time includes the commands it runs, which are also counted on their own.
type RedisCommand struct {
	Calls int64 `json:"calls"`
	Usec  int64 `json:"usec"`
}

// sampleRedis reads CPU and command statistics of the Redis at url; nil
// without a url.
func sampleRedis(ctx context.Context, url string) (*redisSample, error) {
	if url == "" {
		return nil, nil
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	info, err := c.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO: %w", err)
	}
	cpu, err := parseRedisCPU(info)
	if err != nil {
		return nil, err
	}
	return &redisSample{cpu: cpu, commands: parseCommandStats(info)}, nil
}

// since is the difference b - a of two samples: CPU time and the commands
// that ran in between.
func (a *redisSample) since(b *redisSample) (time.Duration, map[string]RedisCommand) {
	d := map[string]RedisCommand{}
	for name, x := range b.commands {
		y := a.commands[name]
		if x.Calls > y.Calls {
			d[name] = RedisCommand{Calls: x.Calls - y.Calls, Usec: x.Usec - y.Usec}
		}
	}
	return b.cpu - a.cpu, d
}

// parseCommandStats reads the cmdstat_NAME:calls=N,usec=U,... lines of INFO.
func parseCommandStats(info string) map[string]RedisCommand {
	out := map[string]RedisCommand{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if name, ok = strings.CutPrefix(name, "cmdstat_"); !ok {
			continue
		}
		var c RedisCommand
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				c.Calls = n
			case "usec":
				c.Usec = n
			}
		}
		out[name] = c
	}
	return out
}

// parseRedisCPU adds used_cpu_sys and used_cpu_user (seconds) of an INFO
// CPU answer.
func parseRedisCPU(info string) (time.Duration, error) {
	var total float64
	found := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("redis INFO CPU: %s: %w", k, err)
		}
		total += s
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("redis INFO CPU: no used_cpu_sys and used_cpu_user in %q", info)
	}
	return time.Duration(total * float64(time.Second)), nil
}
