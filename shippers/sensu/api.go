package sensu

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// deleteEntity removes the entity through the core/v2 REST API, so it is
// gone at once rather than after the keepalive timeout. The backend deletes
// the entity's events with it. Failures that may pass (the backend
// restarting, 5xx) are retried until ctx ends; a missing entity counts as
// deleted.
func (a *Agent) deleteEntity(ctx context.Context) error {
	endpoint := strings.TrimRight(a.cfg.APIURL, "/") + "/api/core/v2/namespaces/" +
		url.PathEscape(a.cfg.Namespace) + "/entities/" + url.PathEscape(a.cfg.EntityName)
	delay := 100 * time.Millisecond
	for {
		status, err := a.deleteOnce(ctx, endpoint)
		switch {
		case err == nil && (status == http.StatusNoContent || status == http.StatusOK):
			a.log.Info("sensu: entity deleted", "entity", a.cfg.EntityName, "namespace", a.cfg.Namespace)
			return nil
		case err == nil && status == http.StatusNotFound:
			a.log.Info("sensu: entity already gone", "entity", a.cfg.EntityName)
			return nil
		case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
			return fmt.Errorf("sensu: deleting entity %s: the API refused the API key (HTTP %d): check STEWARD_SENSU_API_KEY and its role", a.cfg.EntityName, status)
		case err == nil && status < 500:
			return fmt.Errorf("sensu: deleting entity %s: HTTP %d", a.cfg.EntityName, status)
		}
		if err == nil {
			err = fmt.Errorf("HTTP %d", status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sensu: deleting entity %s: %w (gave up at the flush deadline)", a.cfg.EntityName, err)
		case <-time.After(delay):
			delay = min(delay*2, 2*time.Second)
		}
	}
}

func (a *Agent) deleteOnce(ctx context.Context, endpoint string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, endpoint, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Key "+a.cfg.APIKey)
	req.Header.Set("User-Agent", a.userAgent())
	resp, err := a.api.Do(req)
	if err != nil {
		// The error names the URL, never the key, which is in a header.
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// userAgent names steward and its version in API requests and the
// transport handshake.
func (a *Agent) userAgent() string { return "steward/" + a.id.StewardVersion }
