/* train.h: one run from its resolved spec to rows in the database:
 * build the model, stream batches, train with AdamW, evaluate on the
 * length grid, record curves and evals, report how it ended. */
#ifndef SB_TRAIN_H
#define SB_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "db.h"
#include "progress.h"
#include "spec.h"

/* Set by SIGINT/SIGTERM: the current step finishes, then the run stops as
 * interrupted. */
extern volatile sig_atomic_t train_stop_signal;

typedef struct {
    const char *status;   /* done | failed | diverged | interrupted */
    char error[512];
    int64_t steps_done;
    double train_seconds;
} run_outcome;

/* Number of parameters the spec's model has (for the runs row); 0 on error. */
int64_t train_count_params(const run_spec *spec);
/* Whether the CUDA kernels cover the run's model at its longest sequence
 * (model_cuda_fits): 0, or -1 with the reason in err. */
int train_cuda_fits(const run_spec *spec, char *err, size_t errlen);

/* Trains and evaluates; writes curves and evals for run_id as it goes.
 * Never exits the process; the outcome says how the run ended. */
void train_run(const run_spec *spec, sb_db *db, int64_t run_id, progress *prog,
               run_outcome *out);

/* Metrics of one evaluation at one length. */
typedef struct {
    double token_acc, seq_acc, scaled_acc, loss;
    int64_t count;        /* scored positions */
} eval_metrics;

#endif
