/* Selecting a variant: the valid one of a backend that fits and comes first in the ship order (rank, then
 * accuracy), with headroom and hysteresis. */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define MIB (1024.0 * 1024.0)

static void verdict(rs_selection *out, size_t i, rs_verdict_kind kind, const char *reason) {
    out->verdicts[i].kind = kind;
    snprintf(out->verdicts[i].reason, sizeof out->verdicts[i].reason, "%s", reason);
}

static uint64_t need_of(const rs_bundle *bundle, const uint64_t *needs, size_t i) {
    return needs != NULL ? needs[i] : bundle->artifacts[i].memory_bytes;
}

int rs_artifact_order(const rs_artifact *a, const rs_artifact *b) {
    if (a->rank != b->rank) {
        return a->rank > b->rank ? 1 : -1;
    }
    return (a->accuracy > b->accuracy) - (a->accuracy < b->accuracy);
}

/* Indices of `backend`'s artifacts in selection order (rs_artifact_order; less memory first on ties). */
static size_t ranked(const rs_bundle *bundle, const char *backend, const uint64_t *needs,
                     size_t order[RS_MAX_ARTIFACTS]) {
    size_t n = 0;
    for (size_t i = 0; i < bundle->count; i++) {
        if (strcmp(bundle->artifacts[i].backend, backend) != 0) {
            continue;
        }
        size_t j = n++;
        const rs_artifact *a = &bundle->artifacts[i];
        while (j > 0) {
            int ahead = rs_artifact_order(&bundle->artifacts[order[j - 1]], a);
            if (ahead > 0 || (ahead == 0 && need_of(bundle, needs, order[j - 1]) <= need_of(bundle, needs, i))) {
                break;
            }
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    return n;
}

static rs_status select_override(rs_bundle *bundle, const rs_policy *policy, rs_selection *out, rs_error *err) {
    for (size_t i = 0; i < bundle->count; i++) {
        const rs_artifact *a = &bundle->artifacts[i];
        if (strcmp(a->backend, policy->backend) != 0 || strcmp(a->id, policy->override_id) != 0) {
            if (out->verdicts[i].kind != RS_VERDICT_OTHER_BACKEND) {
                verdict(out, i, RS_VERDICT_NOT_OVERRIDE, "an override is set");
            }
            continue;
        }
        rs_error local = {RS_OK, ""};
        rs_status status = rs_bundle_verdict(bundle, i, &local);
        if (status != RS_OK) {
            verdict(out, i, RS_VERDICT_INVALID, local.message);
            return rs_fail(err, status, "override %s is invalid: %s", a->id, local.message);
        }
        verdict(out, i, RS_VERDICT_CHOSEN, "explicit override (memory not considered)");
        out->chosen = i;
        return RS_OK;
    }
    return rs_fail(err, RS_ERR_ARGUMENT, "override %s: no such variant for backend %s", policy->override_id,
                   policy->backend);
}

rs_status rs_select(rs_bundle *bundle, const rs_policy *policy, uint64_t available, size_t current,
                    rs_selection *out, rs_error *err) {
    return rs_select_with_needs(bundle, policy, available, current, NULL, out, err);
}

rs_status rs_select_with_needs(rs_bundle *bundle, const rs_policy *policy, uint64_t available, size_t current,
                               const uint64_t *needs, rs_selection *out, rs_error *err) {
    if (bundle == NULL || policy == NULL || policy->backend == NULL || out == NULL || !(policy->hysteresis >= 0)) {
        return rs_fail(err, RS_ERR_ARGUMENT, "rs_select: bundle, policy with a backend, hysteresis >= 0 and out "
                                             "are required");
    }
    memset(out, 0, sizeof *out);
    out->chosen = SIZE_MAX;
    out->available = available;
    for (size_t i = 0; i < bundle->count; i++) {
        verdict(out, i, RS_VERDICT_OTHER_BACKEND, bundle->artifacts[i].backend);
    }
    if (policy->override_id != NULL) {
        return select_override(bundle, policy, out, err);
    }
    size_t order[RS_MAX_ARTIFACTS];
    size_t n = ranked(bundle, policy->backend, needs, order);
    int in_use = current < bundle->count;
    char reason[320];
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        const rs_artifact *a = &bundle->artifacts[i];
        if (out->chosen != SIZE_MAX) {
            const rs_artifact *chosen = &bundle->artifacts[out->chosen];
            if (chosen->rank != a->rank) {
                snprintf(reason, sizeof reason, "ship order: rank %u after %s's %u (top-1 %.2f%%, %s %.2f%%)",
                         (unsigned)a->rank, chosen->id, (unsigned)chosen->rank, a->accuracy, chosen->id,
                         chosen->accuracy);
            } else {
                snprintf(reason, sizeof reason, "top-1 %.2f%% < %.2f%% of %s", a->accuracy, chosen->accuracy,
                         chosen->id);
            }
            verdict(out, i, RS_VERDICT_LESS_ACCURATE, reason);
            continue;
        }
        /* Moving up from the variant in use to a larger one asks for `hysteresis` more room. */
        uint64_t own = need_of(bundle, needs, i);
        if (own == UINT64_MAX) {
            verdict(out, i, RS_VERDICT_INVALID, "its backend refused to load it");
            continue;
        }
        int moving_up = in_use && i != current && own > need_of(bundle, needs, current);
        double extra = moving_up ? policy->hysteresis * (double)own : 0.0;
        double need = (double)own + (double)policy->headroom_bytes + extra;
        if (need > (double)available) {
            snprintf(reason, sizeof reason, "needs %.1f MiB (%.1f + %.1f headroom%s), %.1f MiB available",
                     need / MIB, (double)own / MIB, (double)policy->headroom_bytes / MIB,
                     moving_up ? " + hysteresis" : "", (double)available / MIB);
            verdict(out, i, RS_VERDICT_TOO_LARGE, reason);
            continue;
        }
        rs_error local = {RS_OK, ""};
        if (rs_bundle_verdict(bundle, i, &local) != RS_OK) {
            verdict(out, i, RS_VERDICT_INVALID, local.message);
            continue;
        }
        snprintf(reason, sizeof reason, "first in the ship order that fits (rank %u): top-1 %.2f%%, needs %.1f MiB "
                 "of %.1f MiB", (unsigned)a->rank, a->accuracy, need / MIB, (double)available / MIB);
        verdict(out, i, RS_VERDICT_CHOSEN, reason);
        out->chosen = i;
    }
    if (out->chosen == SIZE_MAX) {
        return rs_fail(err, RS_ERR_NOTHING_FITS, "no valid %s variant fits in %.1f MiB (%zu considered)",
                       policy->backend, (double)available / MIB, n);
    }
    return RS_OK;
}
