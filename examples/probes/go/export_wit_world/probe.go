// Package export_wit_world implements the `probe` world's exports (`describe` and
// `check`) for the bindings `wit-bindgen go -w probe` generates: the generated
// `wit_exports.go` (package main) calls Describe and Check here.
//
// The probe, `http-keyword`, fetches a URL through the host's `http` import and is
// healthy when the response is 2xx and its body contains a keyword.
package export_wit_world

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	http "wit_component/healthprobe_probe_http"
	types "wit_component/healthprobe_probe_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type pair = witTypes.Tuple2[string, string]

func Describe() types.ProbeInfo {
	return types.ProbeInfo{
		Name:        "http-keyword",
		Version:     "0.1.0",
		Description: "GETs a URL; healthy when the status is 2xx and the body contains a keyword",
		Params: []types.ParamSpec{
			{Name: "url", Description: "The http:// or https:// URL to fetch", Required: true, Default: witTypes.None[string]()},
			{Name: "keyword", Description: "Text the response body must contain (none: any 2xx body)", Default: witTypes.None[string]()},
			{Name: "timeout-ms", Description: "Request timeout in milliseconds (capped by the run's budget)", Default: witTypes.Some("5000")},
		},
	}
}

func invalid(name, reason string) witTypes.Result[types.CheckResult, types.CheckError] {
	return witTypes.Err[types.CheckResult](types.MakeCheckErrorInvalidParam(types.ParamProblem{Name: name, Reason: reason}))
}

func verdict(status types.Status, message string, details ...pair) witTypes.Result[types.CheckResult, types.CheckError] {
	return witTypes.Ok[types.CheckResult, types.CheckError](types.CheckResult{Status: status, Message: message, Details: details})
}

func Check(params []pair, budgetMs uint64) witTypes.Result[types.CheckResult, types.CheckError] {
	url, keyword, timeoutMs := "", "", uint64(5000)
	for _, p := range params {
		switch p.F0 {
		case "url":
			url = p.F1
		case "keyword":
			keyword = p.F1
		case "timeout-ms":
			n, err := strconv.ParseUint(p.F1, 10, 64)
			if err != nil || n == 0 {
				return invalid("timeout-ms", "expected a positive number of milliseconds, like 2000")
			}
			timeoutMs = n
		}
	}
	if url == "" {
		return invalid("url", "expected an http:// or https:// URL")
	}
	if budgetMs < timeoutMs {
		timeoutMs = budgetMs
	}

	start := time.Now()
	res := http.Send(http.Request{
		Method:    "GET",
		Url:       url,
		Body:      witTypes.None[[]uint8](),
		TimeoutMs: witTypes.Some(timeoutMs),
	})
	elapsed := strconv.FormatInt(time.Since(start).Milliseconds(), 10)
	if res.IsErr() {
		e := res.Err()
		kind, text := httpError(e)
		return verdict(types.Status_Unhealthy, fmt.Sprintf("%s: %s", kind, text),
			pair{F0: "error", F1: kind}, pair{F0: "elapsed-ms", F1: elapsed})
	}
	resp := res.Ok()
	details := []pair{
		{F0: "status", F1: strconv.Itoa(int(resp.Status))},
		{F0: "body-bytes", F1: strconv.Itoa(len(resp.Body))},
		{F0: "elapsed-ms", F1: elapsed},
	}
	switch {
	case resp.Status < 200 || resp.Status > 299:
		return verdict(types.Status_Unhealthy, fmt.Sprintf("HTTP %d from %s", resp.Status, url), details...)
	case keyword != "" && !strings.Contains(string(resp.Body), keyword):
		return verdict(types.Status_Unhealthy, fmt.Sprintf("HTTP %d from %s, but the body lacks %q", resp.Status, url, keyword), details...)
	case keyword != "":
		return verdict(types.Status_Healthy, fmt.Sprintf("HTTP %d from %s, body contains %q", resp.Status, url, keyword), details...)
	default:
		return verdict(types.Status_Healthy, fmt.Sprintf("HTTP %d from %s", resp.Status, url), details...)
	}
}

func httpError(e http.Error) (string, string) {
	switch e.Tag() {
	case http.Error_Denied:
		return "denied", e.Denied()
	case http.Error_Timeout:
		return "timeout", e.Timeout()
	case http.Error_Connect:
		return "connect", e.Connect()
	case http.Error_Tls:
		return "tls", e.Tls()
	case http.Error_TooLarge:
		return "too-large", e.TooLarge()
	case http.Error_Invalid:
		return "invalid", e.Invalid()
	case http.Error_Protocol:
		return "protocol", e.Protocol()
	}
	return "error", "unknown"
}
