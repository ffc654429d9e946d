// What the GPUs of a node hold, read on the node by its shell: part of the probe (remote-probe.ts)
// and, alone, the command --wait-for-gpus repeats. Written for /bin/sh like every node program.

// Prints, when the node has nvidia-smi (nothing otherwise):
//   fanout.gpu=INDEX, UUID, MEMORY.USED, MEMORY.TOTAL   one line per GPU (MiB)
//   fanout.gpus=N                                       how many
//   fanout.gpu_app=GPU_UUID, PID, USED_MEMORY           one line per compute process on a GPU
//   fanout.gpu_proc=PID USER ARGS                       ps's answer for those pids (when it can see them)
// Lines are filtered and counted by the shell (a grep is one more process on every node of every
// launch); the apps are asked only where there are GPUs, and ps only when something holds one.
// nvidia-smi may hang on a wedged driver: 20 s at most each.
export const GPU_QUERY = `fanout_gpus() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  _fanout_l=$(timeout 20 nvidia-smi --query-gpu=index,uuid,memory.used,memory.total --format=csv,noheader,nounits 2>/dev/null)
  _fanout_g=0 _fanout_p=
  while IFS= read -r _fanout_x; do
    case $_fanout_x in [0-9]*,*) _fanout_g=$((_fanout_g + 1)); echo "fanout.gpu=$_fanout_x" ;; esac
  done <<FANOUT_EOF
$_fanout_l
FANOUT_EOF
  echo "fanout.gpus=$_fanout_g"
  [ "$_fanout_g" -gt 0 ] || return 0
  _fanout_l=$(timeout 20 nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits 2>/dev/null)
  while IFS= read -r _fanout_x; do
    case $_fanout_x in
      *,*)
        echo "fanout.gpu_app=$_fanout_x"
        _fanout_x=\${_fanout_x#*,} _fanout_x=\${_fanout_x%%,*} _fanout_x=\${_fanout_x# }
        case $_fanout_x in '' | *[!0-9]*) ;; *) _fanout_p=$_fanout_p\${_fanout_p:+,}$_fanout_x ;; esac
        ;;
    esac
  done <<FANOUT_EOF
$_fanout_l
FANOUT_EOF
  [ -z "$_fanout_p" ] || ps -o pid= -o user:32= -o args= -p "$_fanout_p" 2>/dev/null | while IFS= read -r _fanout_x; do echo "fanout.gpu_proc=$_fanout_x"; done
}`
