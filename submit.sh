#!/bin/bash
# beamwatch on SLURM: train, then test the same run folder.
#
#   sbatch submit.sh                                   one node, one GPU (defaults below)
#   sbatch --gpus-per-node=4 --ntasks-per-node=1 submit.sh --set train.distribute=mirrored
#   sbatch --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 submit.sh   multi-worker, 8 GPUs
#   sbatch submit.sh --config configs/my.yaml --set train.epochs=50    extra args pass through
#   sbatch --gpus-per-node=0 --ntasks-per-node=2 --cpus-per-task=4 --mem=16G submit.sh
#                                                      CPU-only nodes: 2 workers, no GPU request
#
# Every #SBATCH default below can be overridden on the sbatch command line.
# logs/ ships with the repository: SLURM opens logs/slurm-<jobid>.out before this script runs,
# and a missing folder fails the job without any output (mkdir -p logs if you removed it).
# Environment: BEAMWATCH_VENV=/path/to/venv (activated if set), or BEAMWATCH_CONDA_ENV=name;
# BEAMWATCH_PYTHON (default: python); BEAMWATCH_RUN_DIR (default: runs/slurm-<jobid>-<name>).
# Requeue-safe: the run folder is named after the job id, so a requeued job trains into the same
# folder and resumes from its last completed epoch (its backup/); a finished training is not
# repeated. To resume a cancelled job in a new job, pass its folder: BEAMWATCH_RUN_DIR=runs/...
#
#SBATCH --job-name=beamwatch
#SBATCH --time=08:00:00
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --output=logs/slurm-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue

set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-$(pwd)}"
mkdir -p logs

if [ -n "${BEAMWATCH_VENV:-}" ]; then
  # shellcheck disable=SC1091
  source "${BEAMWATCH_VENV}/bin/activate"
elif [ -n "${BEAMWATCH_CONDA_ENV:-}" ]; then
  eval "$(conda shell.bash hook)"
  conda activate "${BEAMWATCH_CONDA_ENV}"
fi
PYTHON="${BEAMWATCH_PYTHON:-python}"

JOB_ID="${SLURM_JOB_ID:-local$$}"
RUN_DIR="${BEAMWATCH_RUN_DIR:-runs/slurm-${JOB_ID}-${SLURM_JOB_NAME:-beamwatch}}"
NTASKS="${SLURM_NTASKS:-1}"

# One task per GPU across nodes -> multi_worker; one task with several GPUs -> mirrored.
# An explicit --set train.distribute=... among the extra arguments wins (it comes last).
if [ "${NTASKS}" -gt 1 ]; then
  DISTRIBUTE=multi_worker
else
  DISTRIBUTE=auto
fi

echo "beamwatch: job ${JOB_ID} on $(hostname): ${NTASKS} task(s), run folder ${RUN_DIR}, distribute=${DISTRIBUTE}"
echo "beamwatch: started $(date -u +%Y-%m-%dT%H:%M:%SZ) (restart count ${SLURM_RESTART_COUNT:-0})"

# status.json says whether training finished (written last); folders from before it existed
# count as finished when they hold metrics.json.
if grep -qs '"state": "complete"' "${RUN_DIR}/status.json" \
   || { [ ! -e "${RUN_DIR}/status.json" ] && [ -f "${RUN_DIR}/metrics.json" ]; }; then
  echo "beamwatch: ${RUN_DIR} already finished training (requeued job); skipping to the test"
else
  srun --kill-on-bad-exit=1 "${PYTHON}" driver.py --train --run "${RUN_DIR}" \
    --set "train.distribute=${DISTRIBUTE}" "$@"
fi

# The test runs once, on one task, on the run's held-out period.
srun --ntasks=1 --nodes=1 "${PYTHON}" driver.py --test --run "${RUN_DIR}" "$@"
echo "beamwatch: finished $(date -u +%Y-%m-%dT%H:%M:%SZ)"
